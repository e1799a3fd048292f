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
import dev.myelin.axonapp.support.MyelinSecurity;
import dev.myelin.axonapp.support.MyelinServer;
import dev.myelin.axonapp.support.Store;
import io.axoniq.axonserver.grpc.control.ClientIdentification;
import io.axoniq.axonserver.grpc.control.PlatformServiceGrpc;
import io.axoniq.axonserver.grpc.event.EventStoreGrpc;
import io.axoniq.axonserver.grpc.event.GetAggregateEventsRequest;
import io.axoniq.axonserver.grpc.event.GetLastTokenRequest;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.AbstractStub;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.function.Executable;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
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
 * Myelin runs as every server of the suite does ({@link dev.myelin.axonapp.support.MyelinSecurity#secure()}): TLS,
 * {@code axoniq.axonserver.accesscontrol.enabled=true}, an admin token and an application token. Here the token is
 * left out or replaced on purpose; everything else goes through TLS with the suite's CA.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AccessControlTest {

    private static final Metadata.Key<String> ERROR_CODE = Metadata.Key.of("axoniq-errorcode",
                                                                            Metadata.ASCII_STRING_MARSHALLER);
    private static final String GET_PLATFORM_SERVER = "io.axoniq.axonserver.grpc.control.PlatformService/GetPlatformServer";

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    @Test
    void wrongTokenIsRefusedWithAxonIq1001() {
        assertRefused(myelin.settings().token("not-" + myelin.server().appToken()), "AXONIQ-1001",
                      "Invalid token for " + GET_PLATFORM_SERVER);
    }

    @Test
    void missingTokenIsRefusedWithAxonIq1000() {
        assertRefused(myelin.settings().token(null), "AXONIQ-1000", "No token for " + GET_PLATFORM_SERVER);
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
        ManagedChannel channel = myelin.server().channelBuilder().build(); // TLS, no token of its own
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
            // the application token passes the same calls, and so does the admin token
            for (String token : new String[]{myelin.server().appToken(), myelin.server().adminToken()}) {
                withToken(EventStoreGrpc.newBlockingStub(channel), token)
                        .getLastToken(GetLastTokenRequest.getDefaultInstance());
                assertTrue(withToken(PlatformServiceGrpc.newBlockingStub(channel), token)
                                   .getPlatformServer(ClientIdentification.newBuilder().setClientId("raw")
                                                                          .setComponentName("raw").build())
                                   .getSameConnection());
            }
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    @Test
    void rightTokenWorksForEventsProcessorsCommandsAndQueries() throws Exception {
        GiftCardApp app = myelin.startApp(myelin.settings()); // the suite's application token
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

    /**
     * REST (HTTPS) checks the {@code AxonIQ-Access-Token} header the same way: none is AXONIQ-1000, a wrong one
     * AXONIQ-1001, both 403 with the code in {@code AxonIQ-ErrorCode}; the application token reads, but only the
     * admin token controls processors.
     */
    @Test
    void restChecksTheTokenAndKeepsProcessorControlForTheAdmin() throws Exception {
        MyelinServer server = myelin.server();
        assertRestRefused("AXONIQ-1000", server.send(server.request("/v1/public", null).GET().build()));
        assertRestRefused("AXONIQ-1001", server.send(server.request("/v1/public", "wrong").GET().build()));
        HttpResponse<String> read = server.send(server.request("/v1/public").GET().build());
        assertEquals(200, read.statusCode(), read.body());
        HttpResponse<String> adminRead = server.send(server.adminRequest("/v1/public").GET().build());
        assertEquals(200, adminRead.statusCode(), adminRead.body());

        String pause = "/v1/components/no-such-app/processors/no-such-processor/pause?tokenStoreIdentifier=none";
        assertRestRefused("AXONIQ-1001", server.send(server.request(pause)
                                                           .method("PATCH", HttpRequest.BodyPublishers.noBody())
                                                           .build()));
        HttpResponse<String> asAdmin = server.send(server.adminRequest(pause)
                                                         .method("PATCH", HttpRequest.BodyPublishers.noBody())
                                                         .build());
        assertEquals(404, asAdmin.statusCode(), "the admin passes the check; the processor is unknown: "
                + asAdmin.body());
    }

    private static void assertRestRefused(String errorCode, HttpResponse<String> response) {
        assertEquals(403, response.statusCode(), response.body());
        assertEquals(errorCode, response.headers().firstValue("AxonIQ-ErrorCode").orElse(null),
                     response.headers() + " " + response.body());
    }

    private static <S extends AbstractStub<S>> S withToken(S stub, String token) {
        return stub.withInterceptors(MyelinSecurity.tokenInterceptor(token)).withDeadlineAfter(5, TimeUnit.SECONDS);
    }

    private static void assertRpcRefused(String errorCode, Executable call) {
        StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, call);
        assertEquals(Status.Code.PERMISSION_DENIED, refused.getStatus().getCode(), refused.toString());
        assertEquals(errorCode, refused.getTrailers() == null ? null : refused.getTrailers().get(ERROR_CODE),
                     refused.toString());
    }
}
