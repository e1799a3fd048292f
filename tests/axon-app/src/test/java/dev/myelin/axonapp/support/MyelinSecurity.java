package dev.myelin.axonapp.support;

import dev.myelin.axonapp.GiftCardApp;
import io.grpc.ClientInterceptor;
import io.grpc.Metadata;
import io.grpc.stub.MetadataUtils;

import java.io.IOException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.stream.Collectors;

/**
 * How a Myelin process of the suite is secured, and the credentials its clients use. One instance is shared by a
 * server across its restarts and by every node of a {@link MyelinCluster}.
 * <ul>
 *     <li>{@link #secure()} (the default of {@link MyelinServer} and {@link MyelinCluster}): TLS on the gRPC, HTTP
 *     and cluster ports with {@link TestCertificates#suite()}, and access control with a fresh admin token and a
 *     fresh internal token (node to node); applications use the token of an application registered through REST
 *     with the roles an Axon application needs ({@link #appToken(MyelinServer)}).</li>
 *     <li>{@link #plain()}: neither; only for a test that truly needs plaintext (none does today).</li>
 * </ul>
 * The application token clients use comes from {@link #appToken(MyelinServer)} only.
 */
public final class MyelinSecurity {

    /** gRPC metadata key of the access token ({@code axoniq-access-token}). */
    public static final Metadata.Key<String> ACCESS_TOKEN = Metadata.Key.of("axoniq-access-token",
                                                                             Metadata.ASCII_STRING_MARSHALLER);
    /** HTTP header of the access token on the REST API. */
    public static final String ACCESS_TOKEN_HEADER = "AxonIQ-Access-Token";

    private final TestCertificates certificates;
    private final boolean accessControl;
    private final String adminToken;
    private final String internalToken;
    private String appToken;

    private MyelinSecurity(TestCertificates certificates, boolean accessControl) {
        this.certificates = certificates;
        this.accessControl = accessControl;
        this.adminToken = accessControl ? "admin-" + UUID.randomUUID() : null;
        this.internalToken = accessControl ? "internal-" + UUID.randomUUID() : null;
    }

    /** TLS and access control on, with fresh tokens. */
    public static MyelinSecurity secure() {
        return new MyelinSecurity(TestCertificates.suite(), true);
    }

    /** TLS and access control off. */
    public static MyelinSecurity plain() {
        return new MyelinSecurity(null, false);
    }

    /** Either, or both; {@code tls} uses {@link TestCertificates#suite()}. */
    public static MyelinSecurity of(boolean tls, boolean accessControl) {
        return new MyelinSecurity(tls ? TestCertificates.suite() : null, accessControl);
    }

    public boolean tls() {
        return certificates != null;
    }

    public boolean accessControl() {
        return accessControl;
    }

    /** The served certificates; {@code null} without TLS. */
    public TestCertificates certificates() {
        return certificates;
    }

    /** The CA clients trust; {@code null} without TLS. */
    public Path caFile() {
        return certificates == null ? null : certificates.caFile();
    }

    /** {@code axoniq.axonserver.accesscontrol.admin-token}: everything, including admin-only endpoints. */
    public String adminToken() {
        return adminToken;
    }

    /** {@code axoniq.axonserver.accesscontrol.internal-token}, the same on every node of a cluster. */
    public String internalToken() {
        return internalToken;
    }

    /** The roles the suite's application gets: what an Axon Framework application does, no processor control. */
    static final List<String> APPLICATION_ROLES = List.of("READ_EVENTS", "PUBLISH_EVENTS", "DISPATCH_COMMANDS",
                                                          "SUBSCRIBE_COMMAND_HANDLER", "DISPATCH_QUERY",
                                                          "SUBSCRIBE_QUERY_HANDLER", "MONITOR");

    /**
     * THE token applications and tests use as "an application" (GiftCardApp settings, raw gRPC, non-admin REST);
     * {@code null} without access control. On first call it registers application {@code giftcard-suite} with
     * {@link #APPLICATION_ROLES} in context {@code default} through {@code via}'s REST API (with the admin token)
     * and keeps the token it answers, so every node of a cluster and every restart hand out the same one.
     *
     * @param via the server (a running node, for a cluster) to register the application on
     */
    public synchronized String appToken(MyelinServer via) {
        if (!accessControl) {
            return null;
        }
        if (appToken == null) {
            appToken = register(via);
        }
        return appToken;
    }

    private static String register(MyelinServer via) {
        String roles = APPLICATION_ROLES.stream().map(r -> "\"" + r + "\"").collect(Collectors.joining(","));
        String body = "{\"applicationName\":\"giftcard-suite\",\"description\":\"the suite's Axon application\","
                + "\"roles\":[{\"context\":\"default\",\"roles\":[" + roles + "]}]}";
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        String last = "no answer";
        while (System.nanoTime() < deadline) {
            try {
                HttpResponse<String> response = via.send(via.adminRequest("/v1/applications")
                                                            .header("Content-Type", "application/json")
                                                            .POST(HttpRequest.BodyPublishers.ofString(body))
                                                            .build());
                if (response.statusCode() == 200 && response.body().length() == 64) {
                    return response.body();
                }
                last = response.statusCode() + " " + response.body();
            } catch (IOException e) {
                last = e.toString();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            // A cluster that just formed may still be electing; try again shortly.
            try {
                Thread.sleep(200);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
        throw new IllegalStateException("could not register the suite's application: " + last);
    }

    /**
     * Settings for an application connecting to {@code servers}: TLS trusting the suite's CA (when on) and
     * {@link #appToken(MyelinServer) the application token} (when access control is on).
     */
    public GiftCardApp.Settings appSettings(String servers, MyelinServer via) {
        Path ca = caFile();
        return new GiftCardApp.Settings().servers(servers)
                                         .sslCertFile(ca == null ? null : ca.toString())
                                         .token(appToken(via));
    }

    /** The {@code --set} properties a node is started with (before any test-specific ones, which win). */
    List<String> serverSettings() {
        List<String> settings = new ArrayList<>();
        if (certificates != null) {
            settings.add("axoniq.axonserver.ssl.enabled=true");
            settings.add("axoniq.axonserver.ssl.cert-chain-file=" + certificates.certChainFile());
            settings.add("axoniq.axonserver.ssl.private-key-file=" + certificates.privateKeyFile());
            settings.add("axoniq.axonserver.ssl.internal-trust-manager-file=" + certificates.caFile());
        }
        if (accessControl) {
            settings.add("axoniq.axonserver.accesscontrol.enabled=true");
            settings.add("axoniq.axonserver.accesscontrol.admin-token=" + adminToken);
            settings.add("axoniq.axonserver.accesscontrol.internal-token=" + internalToken);
        }
        return settings;
    }

    /** A gRPC client interceptor that sends {@code token} as {@code axoniq-access-token} ({@code null}: none). */
    public static ClientInterceptor tokenInterceptor(String token) {
        Metadata headers = new Metadata();
        if (token != null) {
            headers.put(ACCESS_TOKEN, token);
        }
        return MetadataUtils.newAttachHeadersInterceptor(headers);
    }

    /** Adds {@code AxonIQ-Access-Token: token} to a REST request ({@code null}: no header). */
    public static HttpRequest.Builder withToken(HttpRequest.Builder request, String token) {
        return token == null ? request : request.header(ACCESS_TOKEN_HEADER, token);
    }

    @Override
    public String toString() {
        return (tls() ? "TLS" : "plaintext") + (accessControl ? " + access control" : "");
    }
}
