package dev.myelin.axonapp;

import dev.myelin.axonapp.Api.CardSummary;
import dev.myelin.axonapp.Api.FindCardQuery;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.Api.RedeemCardCommand;
import dev.myelin.axonapp.Api.RedemptionReceipt;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.LogCapture;
import dev.myelin.axonapp.support.MyelinExtension;
import dev.myelin.axonapp.support.MyelinSecurity;
import dev.myelin.axonapp.support.MyelinServer;
import dev.myelin.axonapp.support.Store;
import dev.myelin.axonapp.support.TestCertificates;
import io.axoniq.axonserver.grpc.control.ClientIdentification;
import io.axoniq.axonserver.grpc.control.PlatformServiceGrpc;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import javax.net.ssl.SSLHandshakeException;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * TLS (Axon Server's {@code axoniq.axonserver.ssl.*}): Myelin serves the suite's certificate
 * ({@link TestCertificates#suite()}) on the gRPC, HTTP and cluster ports, with access control on, as every server of
 * the suite does. A client that trusts the suite's CA works; a plaintext client and a client that trusts another CA
 * are refused, on gRPC and on REST.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TlsTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    /** An unrelated CA: Myelin's certificate is not signed by it. */
    private static final TestCertificates OTHER_CA = TestCertificates.generate("other");

    @Test
    void applicationTrustingTheCaWorksEndToEnd() throws Exception {
        GiftCardApp.Settings settings = myelin.settings();
        assertEquals(myelin.server().caFile().toString(), settings.sslCertFile(), "the application trusts the CA");
        GiftCardApp app = myelin.startApp(settings);
        assertTrue(app.configuration().getComponent(org.axonframework.axonserver.connector.AxonServerConfiguration.class)
                      .isSslEnabled(), "the connector is configured for TLS");

        String card = UUID.randomUUID().toString();
        app.commandGateway().sendAndWait(new IssueCardCommand(card, 100), 10, TimeUnit.SECONDS);
        RedemptionReceipt receipt = app.commandGateway().sendAndWait(new RedeemCardCommand(card, 30), 10,
                                                                     TimeUnit.SECONDS);
        assertEquals(70, receipt.remaining());
        assertEquals(2, Store.events(app, card).size(), "both events stored");
        Await.until(Duration.ofSeconds(15), "the projection saw both events",
                    () -> app.database().card(card).map(c -> c.remainingValue() == 70).orElse(false));
        CardSummary answer = app.queryGateway().query(new FindCardQuery(card), CardSummary.class)
                                .get(10, TimeUnit.SECONDS);
        assertEquals(70, answer.remainingValue());
        assertTrue(app.rpc().closedWith(Status.Code.UNAVAILABLE).isEmpty(),
                   "no call failed: " + app.rpc().closedWith(Status.Code.UNAVAILABLE));
    }

    /** The same call with the CA works (and carries the token); without TLS or with another CA it does not. */
    @Test
    void rawGrpcNeedsTlsWithTheRightCa() throws Exception {
        MyelinServer server = myelin.server();
        assertTrue(getPlatformServer(server.grpcPort(), server.channelCredentials(), server.appToken())
                           .getSameConnection(), "TLS with the suite's CA");

        assertRefusedPlaintext(assertThrows(StatusRuntimeException.class, () -> getPlatformServer(
                server.grpcPort(), InsecureChannelCredentials.create(), server.appToken()), "plaintext gRPC"));

        StatusRuntimeException otherCa = assertThrows(StatusRuntimeException.class, () -> getPlatformServer(
                server.grpcPort(), OTHER_CA.channelCredentials(), server.appToken()), "a client trusting another CA");
        assertEquals(Status.Code.UNAVAILABLE, otherCa.getStatus().getCode(), otherCa.toString());
        assertTrue(causedBy(otherCa, SSLHandshakeException.class), "refused in the TLS handshake: " + otherCa);
    }

    /** The cluster port is TLS as well: a plaintext gRPC client gets nowhere there either. */
    @Test
    void clusterPortRefusesPlaintext() {
        MyelinServer server = myelin.server();
        assertRefusedPlaintext(assertThrows(StatusRuntimeException.class, () -> getPlatformServer(
                server.internalPort(), InsecureChannelCredentials.create(), server.adminToken()),
                                            "plaintext to the cluster port"));
    }

    /** An application that trusts another CA never connects, and its work fails. */
    @Test
    void applicationTrustingAnotherCaDoesNotConnect() {
        Instant start = Instant.now();
        GiftCardApp app = myelin.startApp(myelin.settings().sslCertFile(OTHER_CA.caFile().toString())
                                                .projections(false).awaitReady(false));
        assertThrows(RuntimeException.class, () -> app.localCommandGateway().sendAndWait(
                new IssueCardCommand(UUID.randomUUID().toString(), 10)), "an append over an untrusted connection");
        assertFalse(app.connectionManager().isConnected("default"), "connected to a server it does not trust");
        assertTrue(app.rpc().calls().stream().noneMatch(c -> c.code() == Status.Code.OK),
                   "no call succeeded: " + app.rpc().calls());
        assertFalse(LogCapture.since(start, e -> e.logger().contains("AxonServerManagedChannel")
                            && e.mentions("SSLHandshakeException")).isEmpty(),
                    "the connector reports the failed TLS handshake");
    }

    @Test
    void restIsHttpsOnly() throws Exception {
        MyelinServer server = myelin.server();
        assertTrue(server.baseUrl().startsWith("https://"), server.baseUrl());
        HttpResponse<String> health = server.send(server.request("/actuator/health", null).GET().build());
        assertEquals(200, health.statusCode(), health.body());
        HttpResponse<String> nodes = server.send(server.request("/v1/public").GET().build());
        assertEquals(200, nodes.statusCode(), nodes.body());
        assertTrue(nodes.body().contains(server.name()), nodes.body());

        // plain http:// to the same port
        HttpRequest plain = MyelinSecurity.withToken(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.httpPort() + "/v1/public"))
                           .timeout(Duration.ofSeconds(5)), server.appToken()).GET().build();
        assertThrows(IOException.class, () -> HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build()
                                                        .send(plain, HttpResponse.BodyHandlers.ofString()),
                     "plain HTTP to the HTTPS port");

        // HTTPS, but trusting another CA
        HttpClient otherCa = HttpClient.newBuilder().sslContext(OTHER_CA.sslContext())
                                       .connectTimeout(Duration.ofSeconds(2)).build();
        IOException untrusted = assertThrows(IOException.class, () -> otherCa.send(
                server.request("/v1/public").GET().build(), HttpResponse.BodyHandlers.ofString()),
                                             "HTTPS trusting another CA");
        assertTrue(causedBy(untrusted, SSLHandshakeException.class), "refused in the TLS handshake: " + untrusted);
    }

    private static io.axoniq.axonserver.grpc.control.PlatformInfo getPlatformServer(int port,
                                                                                    ChannelCredentials credentials,
                                                                                    String token)
            throws InterruptedException {
        ManagedChannel channel = Grpc.newChannelBuilderForAddress("localhost", port, credentials)
                                     .intercept(MyelinSecurity.tokenInterceptor(token))
                                     .build();
        try {
            io.axoniq.axonserver.grpc.control.PlatformInfo info =
                    PlatformServiceGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                                       .getPlatformServer(ClientIdentification.newBuilder()
                                                                              .setClientId("tls-probe")
                                                                              .setComponentName("tls-probe")
                                                                              .build());
            assertNotNull(info);
            return info;
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /**
     * How a plaintext HTTP/2 client fails against a TLS port: either the connection is closed (UNAVAILABLE), or, as
     * Myelin (rustls) does, the server answers the client's cleartext preface with a fatal TLS alert record
     * ({@code 15 03 03 00 02}: content type alert, TLS 1.2 record version, length 2), which grpc-java reports as
     * INTERNAL "First received frame was not SETTINGS". Either way no call gets through.
     */
    private static void assertRefusedPlaintext(StatusRuntimeException refused) {
        String causes = chain(refused);
        Status.Code code = refused.getStatus().getCode();
        assertTrue(code == Status.Code.UNAVAILABLE
                           || (code == Status.Code.INTERNAL && causes.contains("Hex dump for first 5 bytes: 1503")),
                   "refused: connection closed, or a TLS alert instead of HTTP/2: " + causes);
    }

    /** The exception and its causes, one line. */
    private static String chain(Throwable error) {
        StringBuilder text = new StringBuilder();
        for (Throwable t = error; t != null; t = t.getCause() == t ? null : t.getCause()) {
            text.append(text.length() == 0 ? "" : " <- ").append(t);
        }
        return text.toString();
    }

    private static boolean causedBy(Throwable error, Class<? extends Throwable> type) {
        for (Throwable t = error; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (type.isInstance(t)) {
                return true;
            }
        }
        return false;
    }
}
