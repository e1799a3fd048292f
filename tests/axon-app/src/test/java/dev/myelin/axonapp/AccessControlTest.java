package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardSummary;
import dev.myelin.axonapp.Api.FindCardQuery;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.RedemptionReceipt;
import dev.myelin.axonapp.RpcRecorder.Call;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.LogCapture;
import dev.myelin.axonapp.support.MyelinExtension;
import dev.myelin.axonapp.support.Store;
import io.axoniq.axonserver.grpc.control.ClientIdentification;
import io.axoniq.axonserver.grpc.control.PlatformServiceGrpc;
import io.axoniq.axonserver.grpc.event.EventStoreGrpc;
import io.axoniq.axonserver.grpc.event.GetAggregateEventsRequest;
import io.axoniq.axonserver.grpc.event.GetLastTokenRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.AbstractStub;
import io.grpc.stub.MetadataUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.function.Executable;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue bullet 8: access control on; a wrong token is refused with Axon's error, the right token works.
 * Myelin runs with {@code axoniq.axonserver.accesscontrol.enabled=true} and an application token.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AccessControlTest {

    private static final String TOKEN = "app-token-" + UUID.randomUUID();
    private static final Metadata.Key<String> ACCESS_TOKEN = Metadata.Key.of("axoniq-access-token",
                                                                              Metadata.ASCII_STRING_MARSHALLER);
    private static final Metadata.Key<String> ERROR_CODE = Metadata.Key.of("axoniq-errorcode",
                                                                            Metadata.ASCII_STRING_MARSHALLER);
    private static final String GET_PLATFORM_SERVER = "io.axoniq.axonserver.grpc.control.PlatformService/GetPlatformServer";

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension("axoniq.axonserver.accesscontrol.enabled=true",
                                                              "axoniq.axonserver.accesscontrol.token=" + TOKEN);

    @Test
    void wrongTokenIsRefusedWithAxonIq1001() {
        assertRefused(myelin.settings().token("not-" + TOKEN), "AXONIQ-1001", "Invalid token for " + GET_PLATFORM_SERVER);
    }

    @Test
    void missingTokenIsRefusedWithAxonIq1000() {
        assertRefused(myelin.settings(), "AXONIQ-1000", "No token for " + GET_PLATFORM_SERVER);
    }

    /**
     * The connector's handshake ({@code GetPlatformServer}) is refused with PERMISSION_DENIED and the code; the
     * connector logs it and keeps retrying, the application never connects, so its work fails (with UNAVAILABLE
     * from the unconnected channel), exactly as against Axon Server.
     */
    private static void assertRefused(GiftCardApp.Settings settings, String errorCode, String description) {
        Instant start = Instant.now();
        GiftCardApp app = myelin.startApp(settings.projections(false).awaitReady(false));
        assertThrows(RuntimeException.class, () -> app.localCommandGateway().sendAndWait(
                new IssueCardCommand(UUID.randomUUID().toString(), 10)), "an append without a valid token");
        assertFalse(app.connectionManager().isConnected("default"), "connected without a valid token");

        List<Call> handshakes = app.rpc().calls().stream()
                                   .filter(c -> c.code() != null && c.method().equals(GET_PLATFORM_SERVER)).toList();
        assertFalse(handshakes.isEmpty(), "GetPlatformServer was answered");
        for (Call call : handshakes) {
            assertEquals(Status.Code.PERMISSION_DENIED, call.code(), call.toString());
            assertEquals(errorCode, call.errorCode(), call.toString());
            assertEquals(description, call.description(), call.toString());
        }
        assertTrue(app.rpc().calls().stream().filter(c -> c.code() == Status.Code.OK).findAny().isEmpty(),
                   "no call succeeded: " + app.rpc().calls());
        assertFalse(LogCapture.since(start, e -> e.logger().contains("AxonServerManagedChannel")
                            && e.mentions("PERMISSION_DENIED")).isEmpty(),
                    "the connector reports the refusal");
    }

    /** Not only the handshake: every RPC checks the token (raw gRPC with the connector's generated stubs). */
    @Test
    void everyRpcChecksTheToken() throws Exception {
        ManagedChannel channel = ManagedChannelBuilder.forAddress("localhost", myelin.server().grpcPort())
                                                      .usePlaintext().build();
        try {
            for (String token : new String[]{null, "wrong"}) {
                String code = token == null ? "AXONIQ-1000" : "AXONIQ-1001";
                assertRpcRefused(code, () -> withToken(EventStoreGrpc.newBlockingStub(channel), token)
                        .getLastToken(GetLastTokenRequest.getDefaultInstance()));
                assertRpcRefused(code, () -> withToken(EventStoreGrpc.newBlockingStub(channel), token)
                        .listAggregateEvents(GetAggregateEventsRequest.newBuilder().setAggregateId("x").build())
                        .hasNext());
                assertRpcRefused(code, () -> withToken(PlatformServiceGrpc.newBlockingStub(channel), token)
                        .getPlatformServer(ClientIdentification.newBuilder().setClientId("raw")
                                                               .setComponentName("raw").build()));
            }
            // the right token passes the same calls
            withToken(EventStoreGrpc.newBlockingStub(channel), TOKEN).getLastToken(GetLastTokenRequest.getDefaultInstance());
            assertTrue(withToken(PlatformServiceGrpc.newBlockingStub(channel), TOKEN)
                               .getPlatformServer(ClientIdentification.newBuilder().setClientId("raw")
                                                                      .setComponentName("raw").build())
                               .getSameConnection());
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    @Test
    void rightTokenWorksForEventsProcessorsCommandsAndQueries() throws Exception {
        GiftCardApp app = myelin.startApp(myelin.settings().token(TOKEN));
        String card = UUID.randomUUID().toString();
        app.localCommandGateway().sendAndWait(new IssueCardCommand(card, 100));
        assertEquals(1, Store.events(app, card).size());
        Await.until(Duration.ofSeconds(15), "projection with the right token",
                    () -> app.database().card(card).isPresent());

        RedemptionReceipt receipt = app.commandGateway().sendAndWait(new RedeemCardCommand(card, 25), 10, TimeUnit.SECONDS);
        assertEquals(75, receipt.remaining());
        Await.until(Duration.ofSeconds(15), "projection after a routed command",
                    () -> app.database().card(card).map(c -> c.remainingValue() == 75).orElse(false));
        CardSummary answer = app.queryGateway().query(new FindCardQuery(card), CardSummary.class).get(10, TimeUnit.SECONDS);
        assertEquals(75, answer.remainingValue());
        assertTrue(app.rpc().closedWith(Status.Code.PERMISSION_DENIED).isEmpty(),
                   "refused calls: " + app.rpc().closedWith(Status.Code.PERMISSION_DENIED));
    }

    private static <S extends AbstractStub<S>> S withToken(S stub, String token) {
        if (token == null) {
            return stub.withDeadlineAfter(5, TimeUnit.SECONDS);
        }
        Metadata headers = new Metadata();
        headers.put(ACCESS_TOKEN, token);
        return stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
                   .withDeadlineAfter(5, TimeUnit.SECONDS);
    }

    private static void assertRpcRefused(String errorCode, Executable call) {
        StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, call);
        assertEquals(Status.Code.PERMISSION_DENIED, refused.getStatus().getCode(), refused.toString());
        assertEquals(errorCode, refused.getTrailers() == null ? null : refused.getTrailers().get(ERROR_CODE),
                     refused.toString());
    }
}
