package dev.myelin.axonapp.support;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.ThrowableProxyUtil;
import ch.qos.logback.core.AppenderBase;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * Logback appender (configured in {@code logback-test.xml}) that keeps every WARN and ERROR logged in this JVM,
 * so tests can assert what Axon Framework and the connector complained about.
 */
public final class LogCapture extends AppenderBase<ILoggingEvent> {

    public record Entry(Instant at, String level, String logger, String thread, String message, String throwable) {

        public boolean mentions(String text) {
            return message.contains(text) || (throwable != null && throwable.contains(text));
        }

        @Override
        public String toString() {
            return at + " " + level + " [" + thread + "] " + logger + " - " + message
                    + (throwable == null ? "" : "\n    " + firstLines(throwable, 6));
        }
    }

    private static final List<Entry> ENTRIES = new ArrayList<>();

    @Override
    protected void append(ILoggingEvent event) {
        if (!event.getLevel().isGreaterOrEqual(Level.WARN)) {
            return;
        }
        String throwable = event.getThrowableProxy() == null ? null
                : ThrowableProxyUtil.asString(event.getThrowableProxy());
        synchronized (ENTRIES) {
            ENTRIES.add(new Entry(Instant.ofEpochMilli(event.getTimeStamp()), event.getLevel().toString(),
                                  event.getLoggerName(), event.getThreadName(), event.getFormattedMessage(),
                                  throwable));
        }
    }

    /** WARN/ERROR entries logged at or after {@code since} that match {@code filter}. */
    public static List<Entry> since(Instant since, Predicate<Entry> filter) {
        synchronized (ENTRIES) {
            return ENTRIES.stream().filter(e -> !e.at().isBefore(since)).filter(filter).toList();
        }
    }

    static String firstLines(String text, int lines) {
        String[] split = text.split("\n");
        return String.join("\n    ", java.util.Arrays.copyOf(split, Math.min(lines, split.length)));
    }
}
