package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.RedemptionReceipt;
import dev.myelin.axonapp.support.MyelinExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue bullet 3: two instances of the command-handling application; commands with the same routing key land on
 * the same instance; when one instance stops, its commands go to the other.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class CommandRoutingTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    private static final int CARDS = 24;

    @Test
    void sameRoutingKeySameInstanceAndFailoverWhenOneStops() {
        GiftCardApp a = myelin.startApp(myelin.settings().instanceName("node-a").projections(false));
        GiftCardApp b = myelin.startApp(myelin.settings().instanceName("node-b").projections(false));
        List<GiftCardApp> senders = List.of(a, b);

        List<String> cards = new ArrayList<>();
        for (int i = 0; i < CARDS; i++) {
            String card = UUID.randomUUID().toString();
            cards.add(card);
            senders.get(i % 2).commandGateway().sendAndWait(new IssueCardCommand(card, 100), 10, TimeUnit.SECONDS);
        }

        // three rounds of redemptions, sent alternately from both instances: one card, one handler
        Map<String, String> handler = new HashMap<>();
        for (int round = 1; round <= 3; round++) {
            for (int i = 0; i < cards.size(); i++) {
                String card = cards.get(i);
                RedemptionReceipt receipt = senders.get((i + round) % 2).commandGateway().sendAndWait(
                        new RedeemCardCommand(card, 1), 10, TimeUnit.SECONDS);
                assertEquals(100 - round, receipt.remaining(), "balance of " + card);
                String previous = handler.putIfAbsent(card, receipt.handledBy());
                if (previous != null) {
                    assertEquals(previous, receipt.handledBy(), "round " + round + ": handler of " + card);
                }
            }
        }
        Set<String> used = Set.copyOf(handler.values());
        assertEquals(Set.of("node-a", "node-b"), used,
                     "both instances get a share of " + CARDS + " routing keys: " + countBy(handler));

        // stop node-a: its cards now go to node-b, which loads them from the event store
        myelin.stopApp(a);
        for (String card : cards) {
            RedemptionReceipt receipt = b.commandGateway().sendAndWait(new RedeemCardCommand(card, 1), 10,
                                                                      TimeUnit.SECONDS);
            assertEquals("node-b", receipt.handledBy(), "after node-a stopped, handler of " + card);
            assertEquals(96, receipt.remaining(), "balance of " + card);
        }

        // node-a comes back: keys are spread again and stay put
        GiftCardApp a2 = myelin.startApp(myelin.settings().instanceName("node-a").projections(false));
        Map<String, String> after = new HashMap<>();
        for (int round = 0; round < 2; round++) {
            for (String card : cards) {
                GiftCardApp sender = round == 0 ? a2 : b;
                RedemptionReceipt receipt = sender.commandGateway().sendAndWait(new RedeemCardCommand(card, 1), 10,
                                                                               TimeUnit.SECONDS);
                String previous = after.putIfAbsent(card, receipt.handledBy());
                if (previous != null) {
                    assertEquals(previous, receipt.handledBy(), "after node-a rejoined, handler of " + card);
                }
            }
        }
        assertTrue(after.containsValue("node-a"), "node-a handles commands again after rejoining: " + countBy(after));
    }

    private static Map<String, Long> countBy(Map<String, String> handler) {
        return handler.values().stream().collect(Collectors.groupingBy(v -> v, Collectors.counting()));
    }
}
