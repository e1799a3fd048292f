package dev.myelin.axonapp;

import com.fasterxml.jackson.annotation.JsonIgnore;
import dev.myelin.axonapp.Api.CardIssuedEvent;
import dev.myelin.axonapp.Api.CardRedeemedEvent;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.RedemptionReceipt;
import org.axonframework.commandhandling.CommandExecutionException;
import org.axonframework.commandhandling.CommandHandler;
import org.axonframework.eventhandling.scheduling.EventScheduler;
import org.axonframework.eventsourcing.EventSourcingHandler;
import org.axonframework.modelling.command.AggregateIdentifier;
import org.axonframework.modelling.command.AggregateLifecycle;

import java.time.Duration;

import static org.axonframework.modelling.command.AggregateLifecycle.apply;

/**
 * Event-sourced gift card. Snapshots (taken by the configured trigger) serialize its fields with Jackson.
 */
public class GiftCard {

    @AggregateIdentifier
    private String cardId;
    private int initialValue;
    private int balance;
    private int redemptions;

    /** Event sourcing handler calls since this object was created: not in snapshots, so it shows what was replayed. */
    @JsonIgnore
    private transient int eventsSourced;

    protected GiftCard() {
        // for Axon (event sourcing) and Jackson (snapshots)
    }

    @CommandHandler
    public GiftCard(IssueCardCommand command, EventScheduler scheduler) {
        if (command.amount() <= 0) {
            throw new IllegalArgumentException("Card amount must be positive, got " + command.amount());
        }
        apply(new CardIssuedEvent(command.cardId(), command.amount()));
        if (command.expireAfterMillis() > 0) {
            scheduler.schedule(Duration.ofMillis(command.expireAfterMillis()),
                               new Api.CardExpiredEvent(command.cardId()));
        }
    }

    @CommandHandler
    public RedemptionReceipt handle(RedeemCardCommand command, InstanceInfo instance) {
        if (command.amount() <= 0) {
            throw new IllegalArgumentException("Redeemed amount must be positive, got " + command.amount());
        }
        if (command.amount() > balance) {
            // Axon's way to hand the caller structured details across Axon Server
            throw new CommandExecutionException(
                    "Insufficient balance on card " + cardId + ": requested " + command.amount() + ", available "
                            + balance,
                    null, new Api.InsufficientBalance(cardId, command.amount(), balance));
        }
        apply(new CardRedeemedEvent(cardId, command.amount(), balance - command.amount()));
        long sequence = AggregateLifecycle.getVersion() == null ? -1 : AggregateLifecycle.getVersion();
        return new RedemptionReceipt(cardId, balance, sequence, instance.instanceName());
    }

    @EventSourcingHandler
    void on(CardIssuedEvent event) {
        cardId = event.cardId();
        initialValue = event.amount();
        balance = event.amount();
        eventsSourced++;
    }

    @EventSourcingHandler
    void on(CardRedeemedEvent event) {
        balance -= event.amount();
        redemptions++;
        eventsSourced++;
    }

    /** The state a test inspects after loading the aggregate. */
    public State state() {
        return new State(cardId, initialValue, balance, redemptions, eventsSourced);
    }

    public record State(String cardId, int initialValue, int balance, int redemptions, int eventsSourced) {
    }
}
