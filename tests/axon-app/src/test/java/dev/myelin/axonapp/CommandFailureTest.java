package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.InsufficientBalance;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.UnhandledCommand;
import dev.myelin.axonapp.support.MyelinExtension;
import dev.myelin.axonapp.support.Store;
import org.axonframework.commandhandling.CommandExecutionException;
import org.axonframework.commandhandling.NoHandlerForCommandException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue bullet 4: a command handler that throws; the caller sees {@code CommandExecutionException} with the
 * handler's message. Also: a command nobody handles.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class CommandFailureTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    @Test
    void handlerExceptionReachesTheCallerAsCommandExecutionException() {
        GiftCardApp caller = myelin.startApp(myelin.settings().projections(false));
        String card = UUID.randomUUID().toString();
        caller.commandGateway().sendAndWait(new IssueCardCommand(card, 30), 10, TimeUnit.SECONDS);

        CommandExecutionException refused = assertThrows(CommandExecutionException.class, () ->
                caller.commandGateway().sendAndWait(new RedeemCardCommand(card, 31), 10, TimeUnit.SECONDS));
        assertTrue(refused.getMessage().contains("Insufficient balance on card " + card + ": requested 31, available 30"),
                   "message: " + refused.getMessage());
        assertEquals(Optional.of(new InsufficientBalance(card, 31, 30)), refused.getDetails(),
                     "details serialized by the handler, carried in the CommandResponse");

        String invalid = UUID.randomUUID().toString();
        CommandExecutionException badIssue = assertThrows(CommandExecutionException.class, () ->
                caller.commandGateway().sendAndWait(new IssueCardCommand(invalid, -5), 10, TimeUnit.SECONDS));
        assertTrue(badIssue.getMessage().contains("Card amount must be positive, got -5"),
                   "message: " + badIssue.getMessage());

        // nothing was stored for the failed commands, and the card still works
        assertEquals(1, Store.events(caller, card).size(), "events of " + card);
        assertEquals(0, Store.events(caller, invalid).size(), "events of " + invalid);
        assertEquals(0, caller.commandGateway().<Api.RedemptionReceipt>sendAndWait(
                new RedeemCardCommand(card, 30), 10, TimeUnit.SECONDS).remaining());
        assertTrue(caller.rpc().started("CommandService/Dispatch") >= 4, "commands went through Myelin");
    }

    @Test
    void commandWithoutHandlerFailsWithNoHandlerForCommandException() {
        GiftCardApp app = myelin.startApp(myelin.settings().projections(false));
        NoHandlerForCommandException failure = assertThrows(NoHandlerForCommandException.class, () ->
                app.commandGateway().sendAndWait(new UnhandledCommand("x"), 10, TimeUnit.SECONDS));
        assertTrue(failure.getMessage().contains(UnhandledCommand.class.getName()), "message: " + failure.getMessage());
    }
}
