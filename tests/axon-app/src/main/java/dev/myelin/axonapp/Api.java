package dev.myelin.axonapp;

import org.axonframework.modelling.command.TargetAggregateIdentifier;

/**
 * The gift card domain's messages: commands, events, queries and their results. Records, serialized by
 * Jackson; the payload type on the wire is the class name, as Axon does it.
 */
public final class Api {

    private Api() {
    }

    // --- commands ---

    /** Issues a card; {@code expireAfterMillis > 0} schedules a {@link CardExpiredEvent} through Axon Server. */
    public record IssueCardCommand(@TargetAggregateIdentifier String cardId, int amount, long expireAfterMillis) {

        public IssueCardCommand(String cardId, int amount) {
            this(cardId, amount, 0);
        }
    }

    public record RedeemCardCommand(@TargetAggregateIdentifier String cardId, int amount) {
    }

    /** A command that no component handles (for the no-handler checks). */
    public record UnhandledCommand(@TargetAggregateIdentifier String id) {
    }

    /** Details of a refused redemption, carried to the caller in {@code CommandExecutionException.getDetails()}. */
    public record InsufficientBalance(String cardId, int requested, int available) {
    }

    /** What the redeem handler answers: the new balance and which application instance handled it. */
    public record RedemptionReceipt(String cardId, int remaining, long sequence, String handledBy) {
    }

    // --- events ---

    public record CardIssuedEvent(String cardId, int amount) {
    }

    public record CardRedeemedEvent(String cardId, int amount, int remaining) {
    }

    /** Published by Axon Server's event scheduler (not a domain event: no aggregate sequence). */
    public record CardExpiredEvent(String cardId) {
    }

    /** An audit record nobody but the ledger handles (the projection's processor block-lists its type). */
    public record CardAuditedEvent(String batch, int number) {
    }

    // --- queries ---

    /** Point-to-point and subscription query: the summary of one card. */
    public record FindCardQuery(String cardId) {
    }

    /** Scatter-gather query: every component answers with what its read model holds. */
    public record CountCardsQuery() {
    }

    /** A query that no component handles (for the no-handler checks). */
    public record UnhandledQuery(String id) {
    }

    public record CardSummary(String cardId, int initialValue, int remainingValue, int redemptions, boolean expired,
                              String tenant, String answeredBy) {

        public CardSummary withAnsweredBy(String instance) {
            return new CardSummary(cardId, initialValue, remainingValue, redemptions, expired, tenant, instance);
        }
    }

    public record CardCount(String componentName, String instanceName, int cards) {
    }
}
