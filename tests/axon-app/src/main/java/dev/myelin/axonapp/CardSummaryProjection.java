package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardCount;
import dev.myelin.axonapp.Api.CardExpiredEvent;
import dev.myelin.axonapp.Api.CardIssuedEvent;
import dev.myelin.axonapp.Api.CardRedeemedEvent;
import dev.myelin.axonapp.Api.CardSummary;
import dev.myelin.axonapp.Api.CountCardsQuery;
import dev.myelin.axonapp.Api.FindCardQuery;
import org.axonframework.config.ProcessingGroup;
import org.axonframework.eventhandling.EventHandler;
import org.axonframework.eventhandling.EventMessage;
import org.axonframework.eventhandling.ReplayStatus;
import org.axonframework.eventhandling.ResetHandler;
import org.axonframework.eventhandling.TrackingToken;
import org.axonframework.queryhandling.QueryHandler;
import org.axonframework.queryhandling.QueryUpdateEmitter;

/**
 * The card summary read model, fed by the pooled streaming processor {@value #PROCESSOR} (2 segments). Answers
 * {@link FindCardQuery} (point-to-point and subscription; every change is emitted as an update) and
 * {@link CountCardsQuery} (scatter-gather).
 */
@ProcessingGroup(CardSummaryProjection.PROCESSOR)
public class CardSummaryProjection {

    public static final String PROCESSOR = "card-summary";

    private final ProjectionDatabase database;
    private final QueryUpdateEmitter updateEmitter;
    private final InstanceInfo instance;

    public CardSummaryProjection(ProjectionDatabase database, QueryUpdateEmitter updateEmitter,
                                 InstanceInfo instance) {
        this.database = database;
        this.updateEmitter = updateEmitter;
        this.instance = instance;
    }

    @EventHandler
    public void on(CardIssuedEvent event, EventMessage<?> message, TrackingToken token, ReplayStatus replay) {
        record(message, token, replay);
        String tenant = (String) message.getMetaData().get("tenant");
        CardSummary summary = database.put(
                new CardSummary(event.cardId(), event.amount(), event.amount(), 0, false, tenant, null));
        emit(summary, replay);
    }

    @EventHandler
    public void on(CardRedeemedEvent event, EventMessage<?> message, TrackingToken token, ReplayStatus replay) {
        record(message, token, replay);
        CardSummary summary = database.update(event.cardId(), old -> new CardSummary(
                old.cardId(), old.initialValue(), event.remaining(), old.redemptions() + 1, old.expired(),
                old.tenant(), null));
        emit(summary, replay);
    }

    @EventHandler
    public void on(CardExpiredEvent event, EventMessage<?> message, TrackingToken token, ReplayStatus replay) {
        record(message, token, replay);
        CardSummary summary = database.update(event.cardId(), old -> new CardSummary(
                old.cardId(), old.initialValue(), old.remainingValue(), old.redemptions(), true, old.tenant(),
                null));
        emit(summary, replay);
    }

    @ResetHandler
    public void reset() {
        database.clearCards();
    }

    @QueryHandler
    public CardSummary handle(FindCardQuery query) {
        return database.card(query.cardId()).map(s -> s.withAnsweredBy(instance.instanceName())).orElse(null);
    }

    @QueryHandler
    public CardCount handle(CountCardsQuery query) {
        return new CardCount(instance.componentName(), instance.instanceName(), database.cardCount());
    }

    private void emit(CardSummary summary, ReplayStatus replay) {
        if (summary != null && !replay.isReplay()) {
            CardSummary update = summary.withAnsweredBy(instance.instanceName());
            updateEmitter.emit(FindCardQuery.class, q -> q.cardId().equals(summary.cardId()), update);
        }
    }

    private void record(EventMessage<?> message, TrackingToken token, ReplayStatus replay) {
        database.record(HandledEvents.of(PROCESSOR, instance, message, token, replay));
    }
}
