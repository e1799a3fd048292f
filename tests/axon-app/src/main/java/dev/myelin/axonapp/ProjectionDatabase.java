package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardSummary;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.UnaryOperator;

/**
 * The read model "database": card summaries plus a log of every event each processor handled. It lives
 * outside the application object so that a restarted application instance can be handed the same one, the
 * way a real read model survives in its database (the token store is a real JDBC store, see
 * {@link GiftCardApp}).
 */
public final class ProjectionDatabase {

    /**
     * One event handled by one processor. {@code token} is the global index (tracking token position),
     * {@code timestamp} the event's own, {@code handledAt} when the handler ran.
     */
    public record Handled(String processor, String instance, String eventId, String payloadType,
                          String aggregateId, long sequence, long token, boolean replay,
                          Object payload, Map<String, Object> metaData, Instant timestamp, Instant handledAt) {
    }

    private final Map<String, CardSummary> cards = new ConcurrentHashMap<>();
    private final List<Handled> handled = new ArrayList<>();

    public Optional<CardSummary> card(String cardId) {
        return Optional.ofNullable(cards.get(cardId));
    }

    public int cardCount() {
        return cards.size();
    }

    public CardSummary put(CardSummary summary) {
        cards.put(summary.cardId(), summary);
        return summary;
    }

    public CardSummary update(String cardId, UnaryOperator<CardSummary> change) {
        return cards.computeIfPresent(cardId, (id, old) -> change.apply(old));
    }

    public void clearCards() {
        cards.clear();
    }

    public synchronized void record(Handled entry) {
        handled.add(entry);
    }

    /** Everything handled so far, in handling order. */
    public synchronized List<Handled> handled() {
        return List.copyOf(handled);
    }

    public synchronized List<Handled> handledBy(String processor) {
        return handled.stream().filter(h -> h.processor().equals(processor)).toList();
    }
}
