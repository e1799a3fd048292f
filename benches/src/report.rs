//! Results: latency percentiles, markdown table rows on stdout, JSON lines in a file.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::BoxError;

/// Collected durations; percentiles by sorting (exact, and cheap at these sample counts).
#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Sorts once; call before [`Latencies::percentile_ms`].
    pub fn sort(&mut self) {
        self.0.sort_unstable();
    }

    /// The `q` quantile (0 < q ≤ 1) by nearest rank, in milliseconds; `None` without samples.
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        let n = self.0.len();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(self.0[rank - 1].as_secs_f64() * 1000.0)
    }
}

/// One measured figure: a table row and a JSON line.
pub struct Row {
    pub measurement: &'static str,
    pub setting: String,
    pub events_per_s: Option<f64>,
    pub ops_per_s: Option<f64>,
    /// What `ops_per_s` counts: fsyncs, transactions, loads.
    pub ops_unit: &'static str,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// `ops_per_s` ÷ the fsync baseline's fsyncs/s.
    pub per_fsync: Option<f64>,
    /// Cores the server and this process used during the measurement (CPU seconds ÷ wall seconds).
    pub server_cores: Option<f64>,
    pub bench_cores: Option<f64>,
    /// Further fields for the JSON line only.
    pub extra: Map<String, Value>,
}

pub const TABLE_HEADER: &str = "| measurement | setting | events/s | ops/s | p50 ms | p99 ms | ops/s ÷ fsyncs/s | server cores | bench cores |\n|---|---|---:|---:|---:|---:|---:|---:|---:|";

impl Row {
    pub fn markdown(&self) -> String {
        let ops = match self.ops_per_s {
            Some(v) => format!("{} {}", count(v), self.ops_unit),
            None => "–".to_string(),
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.measurement,
            self.setting,
            self.events_per_s.map_or("–".to_string(), count),
            ops,
            self.p50_ms.map_or("–".to_string(), ms),
            self.p99_ms.map_or("–".to_string(), ms),
            self.per_fsync
                .map_or("–".to_string(), |r| format!("{r:.2}×")),
            self.server_cores
                .map_or("–".to_string(), |c| format!("{c:.2}")),
            self.bench_cores
                .map_or("–".to_string(), |c| format!("{c:.2}")),
        )
    }

    pub fn json(&self) -> Value {
        let mut line = json!({
            "measurement": self.measurement,
            "setting": self.setting,
            "events_per_s": self.events_per_s,
            "ops_per_s": self.ops_per_s,
            "ops_unit": self.ops_unit,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "ops_per_fsync": self.per_fsync,
            "server_cores": self.server_cores,
            "bench_cores": self.bench_cores,
        });
        if let Value::Object(fields) = &mut line {
            fields.extend(self.extra.clone());
        }
        line
    }
}

/// Where rows go: stdout as markdown, and a JSON-lines file if one was asked for.
pub struct Output {
    json: Option<File>,
}

impl Output {
    pub fn create(json: Option<&Path>) -> Result<Output, BoxError> {
        let json = match json {
            Some(path) => Some(
                File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Output { json })
    }

    pub fn header(&self) {
        println!("{TABLE_HEADER}");
    }

    pub fn row(&mut self, row: &Row) -> Result<(), BoxError> {
        println!("{}", row.markdown());
        self.line(&row.json())
    }

    /// A JSON line that is not a table row (run metadata, server figures).
    pub fn line(&mut self, value: &Value) -> Result<(), BoxError> {
        if let Some(file) = &mut self.json {
            writeln!(file, "{value}")?;
            file.flush()?;
        }
        Ok(())
    }
}

/// A rate with thousands separators and no decimals above 100.
fn count(v: f64) -> String {
    if v < 100.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut l = Latencies::default();
        for i in 1..=100 {
            l.push(Duration::from_millis(i));
        }
        l.sort();
        assert_eq!(l.percentile_ms(0.5), Some(50.0));
        assert_eq!(l.percentile_ms(0.99), Some(99.0));
        assert_eq!(Latencies::default().percentile_ms(0.5), None);
    }

    #[test]
    fn counts_are_grouped() {
        assert_eq!(count(1_234_567.4), "1,234,567");
        assert_eq!(count(999.6), "1,000");
        assert_eq!(count(12.34), "12.3");
    }
}
