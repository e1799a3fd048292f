//! `Metrics`: what the node counts and times — events appended and read, append latency,
//! snapshots, commands and queries per name (rate, latency, errors) — rendered for
//! `/actuator/prometheus` with Axon Server's metric names, and `Timeline`, the per-second history
//! of the last five minutes that the GUI draws its charts from. The services call the `record_*`
//! methods; gauges (connected clients, raft, storage) are read at render time by `http`.
//!
//! Everything lives under one mutex: a record is a map lookup and a few additions, far below the
//! cost of the call it measures, and one lock keeps counters and their history consistent.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Quantiles of the timers' summaries (each the upper bound of the bucket it falls in).
const TIMER_QUANTILES: [f64; 3] = [0.5, 0.95, 0.99];
/// Samples the timeline keeps (one per second).
pub(crate) const TIMELINE_SAMPLES_MAX: usize = 300;

/// A metric family: Prometheus name (without the `_total`/`_seconds` suffix) and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A count that only grows (`<name>_total`).
    Counter,
    /// A latency timer, rendered as Micrometer renders Axon Server's: a summary with quantiles
    /// 0.5, 0.95 and 0.99 (`<name>_seconds{quantile=…}`, `_count`, `_sum`) and `<name>_seconds_max`.
    Timer,
}

/// Axon Server's names (Micrometer dots become underscores in Prometheus).
pub(crate) mod family {
    use super::{Family, Kind};

    pub const EVENTS_APPEND_THROUGHPUT: Family = Family {
        name: "axon_events_append_throughput_count",
        help: "Events appended, per context",
        kind: Kind::Counter,
    };
    pub const EVENTS_APPEND_DURATION: Family = Family {
        name: "axon_events_append_duration",
        help: "Time to append a transaction, from the last event received to the acknowledgement",
        kind: Kind::Timer,
    };
    pub const EVENTS_APPEND_ERRORS: Family = Family {
        name: "axon_events_append_error_count",
        help: "Append transactions refused (sequence conflicts, limits, no leader)",
        kind: Kind::Counter,
    };
    pub const EVENTS_READ_THROUGHPUT: Family = Family {
        name: "myelin_events_read_count",
        help: "Events sent to tracking streams (Axon Server has no such metric), per context",
        kind: Kind::Counter,
    };
    pub const AGGREGATE_READ_DURATION: Family = Family {
        name: "axon_events_read_aggregate_duration",
        help: "Time to start an aggregate's event stream",
        kind: Kind::Timer,
    };
    pub const SNAPSHOTS_APPEND_THROUGHPUT: Family = Family {
        name: "axon_snapshots_append_throughput_count",
        help: "Snapshots stored, per context",
        kind: Kind::Counter,
    };
    pub const COMMANDS_THROUGHPUT: Family = Family {
        name: "axon_commands_throughput_count",
        help: "Commands dispatched, per context and command name",
        kind: Kind::Counter,
    };
    pub const COMMANDS_DURATION: Family = Family {
        name: "axon_commands_duration",
        help: "Time from dispatch to the handler's response, per command name",
        kind: Kind::Timer,
    };
    pub const COMMANDS_ERRORS: Family = Family {
        name: "axon_commands_error_count",
        help: "Commands answered with an error, per command name",
        kind: Kind::Counter,
    };
    pub const QUERIES_THROUGHPUT: Family = Family {
        name: "axon_queries_throughput_count",
        help: "Queries dispatched, per context and query name",
        kind: Kind::Counter,
    };
    pub const QUERIES_DURATION: Family = Family {
        name: "axon_queries_duration",
        help: "Time from dispatch to the query's completion, per query name",
        kind: Kind::Timer,
    };
    pub const COMMANDS_HANDLED: Family = Family {
        name: "myelin_commands_handled",
        help: "Commands answered by a client connected to this node, per command name and client",
        kind: Kind::Counter,
    };
    pub const QUERIES_HANDLED: Family = Family {
        name: "myelin_queries_handled",
        help: "Queries completed by a client connected to this node, per query name and client",
        kind: Kind::Counter,
    };
    pub const QUERIES_ERRORS: Family = Family {
        name: "axon_queries_error_count",
        help: "Queries that ended without a successful response, per query name",
        kind: Kind::Counter,
    };
}

/// Label values of one series, in the order of their names.
type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone)]
enum Series {
    Counter(u64),
    Timer(Timer),
}

/// A latency histogram.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timer {
    buckets: [u64; LATENCY_BUCKETS_SECONDS.len()],
    pub count: u64,
    pub sum_seconds: f64,
    pub max_seconds: f64,
}

impl Timer {
    fn record(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS_SECONDS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += seconds;
        self.max_seconds = self.max_seconds.max(seconds);
    }

    /// The upper bound of the bucket holding quantile `q` (0..1); the maximum beyond the buckets.
    pub fn quantile_seconds(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = (q * self.count as f64).ceil() as u64;
        LATENCY_BUCKETS_SECONDS
            .iter()
            .zip(self.buckets)
            .find(|(_, n)| *n >= rank)
            .map_or(self.max_seconds, |(bound, _)| bound.min(self.max_seconds))
    }

    pub fn mean_seconds(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_seconds / self.count as f64
        }
    }
}

/// What a handler name (command or query) has seen so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct HandlerStats {
    pub count: u64,
    pub errors: u64,
    pub latency: Timer,
    /// Calls per second over the last minute.
    pub rate_per_second: f64,
}

/// Per-second history of one context (oldest first).
#[derive(Debug, Clone, Default)]
pub(crate) struct ContextTimeline {
    pub events_appended: VecDeque<u64>,
    pub events_read: VecDeque<u64>,
    pub snapshots_appended: VecDeque<u64>,
    pub commands: BTreeMap<String, VecDeque<u64>>,
    pub queries: BTreeMap<String, VecDeque<u64>>,
}

/// Node-wide per-second history.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeTimeline {
    pub end_ms: i64,
    pub commit_lag: VecDeque<u64>,
    pub connected_clients: VecDeque<u64>,
    pub contexts: BTreeMap<String, ContextTimeline>,
}

#[derive(Default)]
struct State {
    series: BTreeMap<Family, BTreeMap<Labels, Series>>,
    /// Counter totals at the previous timeline sample.
    sampled: BTreeMap<(Family, Labels), u64>,
    timeline: NodeTimeline,
}

/// The node's counters, timers and their history.
pub(crate) struct Metrics {
    node: String,
    state: Mutex<State>,
}

impl Metrics {
    pub fn new(node: &str) -> Metrics {
        Metrics {
            node: node.to_string(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is complete before anything can panic, so a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, family: Family, labels: Labels, n: u64) {
        let mut state = self.lock();
        let series = state.series.entry(family).or_default();
        if let Series::Counter(total) = series.entry(labels).or_insert(Series::Counter(0)) {
            *total += n;
        }
    }

    fn time(&self, family: Family, labels: Labels, elapsed: Duration) {
        let mut state = self.lock();
        let series = state.series.entry(family).or_default();
        if let Series::Timer(timer) = series
            .entry(labels)
            .or_insert_with(|| Series::Timer(Timer::default()))
        {
            timer.record(elapsed);
        }
    }

    pub fn record_append(&self, context: &str, events: usize, elapsed: Duration) {
        self.add(
            family::EVENTS_APPEND_THROUGHPUT,
            context_labels(context),
            events as u64,
        );
        self.time(
            family::EVENTS_APPEND_DURATION,
            context_labels(context),
            elapsed,
        );
    }

    pub fn record_append_error(&self, context: &str) {
        self.add(family::EVENTS_APPEND_ERRORS, context_labels(context), 1);
    }

    pub fn record_events_read(&self, context: &str, events: usize) {
        if events > 0 {
            self.add(
                family::EVENTS_READ_THROUGHPUT,
                context_labels(context),
                events as u64,
            );
        }
    }

    pub fn record_aggregate_read(&self, context: &str, elapsed: Duration) {
        self.time(
            family::AGGREGATE_READ_DURATION,
            context_labels(context),
            elapsed,
        );
    }

    pub fn record_snapshot(&self, context: &str) {
        self.add(
            family::SNAPSHOTS_APPEND_THROUGHPUT,
            context_labels(context),
            1,
        );
    }

    pub fn record_command(&self, context: &str, name: &str, elapsed: Duration, ok: bool) {
        let labels = handler_labels(context, name);
        self.add(family::COMMANDS_THROUGHPUT, labels.clone(), 1);
        self.time(family::COMMANDS_DURATION, labels.clone(), elapsed);
        if !ok {
            self.add(family::COMMANDS_ERRORS, labels, 1);
        }
    }

    pub fn record_query(&self, context: &str, name: &str, elapsed: Duration, ok: bool) {
        let labels = handler_labels(context, name);
        self.add(family::QUERIES_THROUGHPUT, labels.clone(), 1);
        self.time(family::QUERIES_DURATION, labels.clone(), elapsed);
        if !ok {
            self.add(family::QUERIES_ERRORS, labels, 1);
        }
    }

    /// A client connected here answered a command (or completed a query).
    pub fn record_handled(&self, commands: bool, context: &str, name: &str, client: &str) {
        let family = if commands {
            family::COMMANDS_HANDLED
        } else {
            family::QUERIES_HANDLED
        };
        let mut labels = handler_labels(context, name);
        labels.push(("client", client.to_string()));
        self.add(family, labels, 1);
    }

    /// Forgets the per-client counts of clients that are gone (an application gets a new client
    /// id on every start, so these would otherwise grow without bound).
    pub fn retain_clients(&self, connected: &std::collections::HashSet<String>) {
        let mut state = self.lock();
        for family in [family::COMMANDS_HANDLED, family::QUERIES_HANDLED] {
            if let Some(series) = state.series.get_mut(&family) {
                series.retain(|labels, _| {
                    label(labels, "client").is_some_and(|c| connected.contains(c))
                });
            }
        }
    }

    /// (name, client, count) of what clients connected here handled in `context`.
    pub fn handled(&self, context: &str, commands: bool) -> Vec<(String, String, u64)> {
        let family = if commands {
            family::COMMANDS_HANDLED
        } else {
            family::QUERIES_HANDLED
        };
        let state = self.lock();
        state
            .series
            .get(&family)
            .into_iter()
            .flatten()
            .filter(|(labels, _)| label(labels, "context") == Some(context))
            .filter_map(|(labels, series)| match series {
                Series::Counter(n) => Some((
                    label(labels, "request")?.to_string(),
                    label(labels, "client")?.to_string(),
                    *n,
                )),
                Series::Timer(_) => None,
            })
            .collect()
    }

    /// A counter's current total (0 when it never counted).
    pub fn counter(&self, family: Family, context: &str) -> u64 {
        match self
            .lock()
            .series
            .get(&family)
            .and_then(|s| s.get(&context_labels(context)))
        {
            Some(Series::Counter(n)) => *n,
            _ => 0,
        }
    }

    /// Per command (or query) name of `context`: counts, errors, latency and recent rate.
    pub fn handler_stats(&self, context: &str, commands: bool) -> BTreeMap<String, HandlerStats> {
        let (throughput, duration, errors) = if commands {
            (
                family::COMMANDS_THROUGHPUT,
                family::COMMANDS_DURATION,
                family::COMMANDS_ERRORS,
            )
        } else {
            (
                family::QUERIES_THROUGHPUT,
                family::QUERIES_DURATION,
                family::QUERIES_ERRORS,
            )
        };
        let state = self.lock();
        let mut stats: BTreeMap<String, HandlerStats> = BTreeMap::new();
        let of_context =
            |family: Family| {
                state.series.get(&family).into_iter().flatten().filter_map(
                    move |(labels, series)| {
                        let name = label(labels, "request")?;
                        (label(labels, "context")? == context).then(|| (name.to_string(), series))
                    },
                )
            };
        for (name, series) in of_context(throughput) {
            if let Series::Counter(n) = series {
                stats.entry(name).or_default().count = *n;
            }
        }
        for (name, series) in of_context(errors) {
            if let Series::Counter(n) = series {
                stats.entry(name).or_default().errors = *n;
            }
        }
        for (name, series) in of_context(duration) {
            if let Series::Timer(timer) = series {
                stats.entry(name).or_default().latency = timer.clone();
            }
        }
        if let Some(timeline) = state.timeline.contexts.get(context) {
            let per_name = if commands {
                &timeline.commands
            } else {
                &timeline.queries
            };
            for (name, samples) in per_name {
                let last_minute: u64 = samples.iter().rev().take(60).sum();
                let seconds = samples.len().clamp(1, 60) as f64;
                stats.entry(name.clone()).or_default().rate_per_second =
                    last_minute as f64 / seconds;
            }
        }
        stats
    }

    /// Takes one timeline sample: what every counter gained since the last one, plus the gauges.
    pub fn sample(&self, now_ms: i64, commit_lag: u64, connected_clients: u64) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let timeline = &mut state.timeline;
        timeline.end_ms = now_ms;
        push(&mut timeline.commit_lag, commit_lag);
        push(&mut timeline.connected_clients, connected_clients);
        let tracked = [
            family::EVENTS_APPEND_THROUGHPUT,
            family::EVENTS_READ_THROUGHPUT,
            family::SNAPSHOTS_APPEND_THROUGHPUT,
            family::COMMANDS_THROUGHPUT,
            family::QUERIES_THROUGHPUT,
        ];
        let mut gains: BTreeMap<String, ContextGains> = BTreeMap::new();
        for family in tracked {
            for (labels, series) in state.series.get(&family).into_iter().flatten() {
                let Series::Counter(total) = series else {
                    continue;
                };
                let before = state
                    .sampled
                    .insert((family, labels.clone()), *total)
                    .unwrap_or(0);
                let Some(context) = label(labels, "context") else {
                    continue;
                };
                let gain = total.saturating_sub(before);
                let gains = gains.entry(context.to_string()).or_default();
                match family.name {
                    n if n == family::EVENTS_APPEND_THROUGHPUT.name => gains.appended += gain,
                    n if n == family::EVENTS_READ_THROUGHPUT.name => gains.read += gain,
                    n if n == family::SNAPSHOTS_APPEND_THROUGHPUT.name => gains.snapshots += gain,
                    n if n == family::COMMANDS_THROUGHPUT.name => {
                        let name = label(labels, "request").unwrap_or_default().to_string();
                        *gains.commands.entry(name).or_default() += gain;
                    }
                    _ => {
                        let name = label(labels, "request").unwrap_or_default().to_string();
                        *gains.queries.entry(name).or_default() += gain;
                    }
                }
            }
        }
        for (context, gains) in gains {
            let history = timeline.contexts.entry(context).or_default();
            push(&mut history.events_appended, gains.appended);
            push(&mut history.events_read, gains.read);
            push(&mut history.snapshots_appended, gains.snapshots);
            push_each(&mut history.commands, gains.commands);
            push_each(&mut history.queries, gains.queries);
        }
    }

    pub fn timeline(&self) -> NodeTimeline {
        self.lock().timeline.clone()
    }

    /// The Prometheus text format of every series, each with the `axonserver` label of this node.
    pub fn render(&self, out: &mut String) {
        let state = self.lock();
        for (family, series) in &state.series {
            match family.kind {
                Kind::Counter => {
                    let name = format!("{}_total", family.name);
                    header(out, &name, family.help, "counter");
                    for (labels, value) in series {
                        if let Series::Counter(n) = value {
                            sample_line(out, &name, &self.node, labels, None, *n as f64);
                        }
                    }
                }
                Kind::Timer => {
                    let name = format!("{}_seconds", family.name);
                    header(out, &name, family.help, "summary");
                    for (labels, value) in series {
                        let Series::Timer(timer) = value else {
                            continue;
                        };
                        for q in TIMER_QUANTILES {
                            let quantile = Some(("quantile", q.to_string()));
                            let seconds = timer.quantile_seconds(q);
                            sample_line(out, &name, &self.node, labels, quantile, seconds);
                        }
                        let count = format!("{name}_count");
                        sample_line(out, &count, &self.node, labels, None, timer.count as f64);
                        let sum = format!("{name}_sum");
                        sample_line(out, &sum, &self.node, labels, None, timer.sum_seconds);
                    }
                    let max = format!("{name}_max");
                    header(out, &max, family.help, "gauge");
                    for (labels, value) in series {
                        if let Series::Timer(timer) = value {
                            sample_line(out, &max, &self.node, labels, None, timer.max_seconds);
                        }
                    }
                }
            }
        }
        self.render_rates(out, &state.timeline);
    }

    /// Axon's RateMeter gauges (`<meter>_rate_oneMinuteRate`, `_fiveMinuteRate`,
    /// `_fifteenMinuteRate`, per second) from the timeline. The timeline holds five minutes, so
    /// the fifteen-minute rate is the rate over those five.
    fn render_rates(&self, out: &mut String, timeline: &NodeTimeline) {
        type Pick = fn(&ContextTimeline) -> Vec<u64>;
        let meters: [(&str, Pick); 4] = [
            ("axon_events_append_throughput", |t| {
                t.events_appended.iter().copied().collect()
            }),
            ("axon_snapshots_append_throughput", |t| {
                t.snapshots_appended.iter().copied().collect()
            }),
            ("axon_commands_throughput", |t| sum_series(&t.commands)),
            ("axon_queries_throughput", |t| sum_series(&t.queries)),
        ];
        for (meter, pick) in meters {
            for (window, seconds) in [
                ("oneMinuteRate", 60),
                ("fiveMinuteRate", 300),
                ("fifteenMinuteRate", 300),
            ] {
                let name = format!("{meter}_rate_{window}");
                let values: Vec<(Labels, f64)> = timeline
                    .contexts
                    .iter()
                    .map(|(context, history)| {
                        let samples = pick(history);
                        let taken = samples.len().clamp(1, seconds);
                        let total: u64 = samples.iter().rev().take(seconds).sum();
                        (context_labels(context), total as f64 / taken as f64)
                    })
                    .collect();
                self.render_gauge(
                    out,
                    &name,
                    "Per second, as Axon Server's RateMeter",
                    &values,
                );
            }
        }
    }

    /// Renders one gauge family (values read at render time by the caller).
    pub fn render_gauge(&self, out: &mut String, name: &str, help: &str, values: &[(Labels, f64)]) {
        header(out, name, help, "gauge");
        for (labels, value) in values {
            sample_line(out, name, &self.node, labels, None, *value);
        }
    }
}

#[derive(Default)]
struct ContextGains {
    appended: u64,
    read: u64,
    snapshots: u64,
    commands: BTreeMap<String, u64>,
    queries: BTreeMap<String, u64>,
}

/// Per-second totals over every name (series are aligned at their newest sample).
pub(crate) fn sum_series(per_name: &BTreeMap<String, VecDeque<u64>>) -> Vec<u64> {
    let longest = per_name.values().map(VecDeque::len).max().unwrap_or(0);
    let mut total = vec![0; longest];
    for series in per_name.values() {
        let offset = longest - series.len();
        for (i, n) in series.iter().enumerate() {
            total[offset + i] += n;
        }
    }
    total
}

fn push(history: &mut VecDeque<u64>, value: u64) {
    if history.len() == TIMELINE_SAMPLES_MAX {
        history.pop_front();
    }
    history.push_back(value);
}

/// Pushes each name's gain; names that gained nothing this second get a 0 so series stay aligned.
fn push_each(histories: &mut BTreeMap<String, VecDeque<u64>>, gains: BTreeMap<String, u64>) {
    for (name, history) in histories.iter_mut() {
        push(history, gains.get(name).copied().unwrap_or(0));
    }
    for (name, gain) in gains {
        histories.entry(name).or_insert_with(|| {
            let mut history = VecDeque::new();
            push(&mut history, gain);
            history
        });
    }
}

pub(crate) fn context_labels(context: &str) -> Labels {
    vec![("context", context.to_string())]
}

fn handler_labels(context: &str, name: &str) -> Labels {
    vec![
        ("context", context.to_string()),
        ("request", name.to_string()),
    ]
}

fn label<'a>(labels: &'a Labels, name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample_line(
    out: &mut String,
    name: &str,
    node: &str,
    labels: &Labels,
    extra: Option<(&str, String)>,
    value: f64,
) {
    let _ = write!(out, "{name}{{axonserver=\"{}\"", escape(node));
    for (label, value) in labels
        .iter()
        .map(|(l, v)| (*l, v.as_str()))
        .chain(extra.as_ref().map(|(l, v)| (*l, v.as_str())))
    {
        let _ = write!(out, ",{label}=\"{}\"", escape(value));
    }
    let _ = writeln!(out, "}} {value}");
}

/// Escapes a label value for the Prometheus text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_timers_and_history_add_up() {
        let metrics = Metrics::new("node-1");
        metrics.record_append("default", 3, Duration::from_millis(2));
        metrics.record_command("default", "Issue", Duration::from_millis(4), true);
        metrics.record_command("default", "Issue", Duration::from_millis(40), false);
        metrics.sample(1000, 0, 1);
        metrics.record_append("default", 2, Duration::from_millis(1));
        metrics.sample(2000, 0, 1);

        let timeline = metrics.timeline();
        let default = &timeline.contexts["default"];
        assert_eq!(Vec::from(default.events_appended.clone()), vec![3, 2]);
        assert_eq!(Vec::from(default.commands["Issue"].clone()), vec![2, 0]);

        let stats = metrics.handler_stats("default", true);
        assert_eq!(stats["Issue"].count, 2);
        assert_eq!(stats["Issue"].errors, 1);
        assert_eq!(stats["Issue"].latency.quantile_seconds(0.5), 0.005);
        assert_eq!(stats["Issue"].latency.quantile_seconds(0.99), 0.04);

        let mut text = String::new();
        metrics.render(&mut text);
        assert!(text.contains(
            "axon_events_append_throughput_count_total{axonserver=\"node-1\",context=\"default\"} 5"
        ));
        assert!(text.contains("axon_commands_duration_seconds{axonserver=\"node-1\",context=\"default\",request=\"Issue\",quantile=\"0.5\"} 0.005"));
        assert!(text.contains("axon_commands_duration_seconds_max{axonserver=\"node-1\",context=\"default\",request=\"Issue\"} 0.04"));
        assert!(text.contains("axon_commands_throughput_rate_oneMinuteRate{axonserver=\"node-1\",context=\"default\"} 1"));
        assert!(text.contains("axon_commands_duration_seconds_count{axonserver=\"node-1\",context=\"default\",request=\"Issue\"} 2"));
        assert!(text.contains("axon_commands_error_count_total{axonserver=\"node-1\",context=\"default\",request=\"Issue\"} 1"));
    }

    #[test]
    fn a_history_keeps_five_minutes() {
        let metrics = Metrics::new("n");
        for second in 0..(TIMELINE_SAMPLES_MAX + 10) {
            metrics.record_append("default", 1, Duration::ZERO);
            metrics.sample(second as i64 * 1000, 0, 0);
        }
        let timeline = metrics.timeline();
        assert_eq!(
            timeline.contexts["default"].events_appended.len(),
            TIMELINE_SAMPLES_MAX
        );
        assert_eq!(timeline.commit_lag.len(), TIMELINE_SAMPLES_MAX);
    }

    #[test]
    fn counts_of_clients_that_left_are_forgotten() {
        let metrics = Metrics::new("n");
        metrics.record_handled(true, "default", "Issue", "app-1");
        metrics.record_handled(true, "default", "Issue", "app-2");
        metrics.retain_clients(&["app-2".to_string()].into());
        let handled = metrics.handled("default", true);
        assert_eq!(handled, vec![("Issue".to_string(), "app-2".to_string(), 1)]);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
