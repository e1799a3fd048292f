package dev.myelin.axonapp.support;

import dev.myelin.axonapp.GiftCardApp;
import io.grpc.ClientInterceptor;
import io.grpc.Metadata;
import io.grpc.stub.MetadataUtils;

import java.net.http.HttpRequest;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * How a Myelin process of the suite is secured, and the credentials its clients use. One instance is shared by a
 * server across its restarts and by every node of a {@link MyelinCluster}.
 * <ul>
 *     <li>{@link #secure()} (the default of {@link MyelinServer} and {@link MyelinCluster}): TLS on the gRPC, HTTP
 *     and cluster ports with {@link TestCertificates#suite()}, and access control with a fresh admin token, a fresh
 *     shared application token ({@code accesscontrol.token}) and a fresh internal token (node to node).</li>
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
    private final String sharedAppToken;
    private final String internalToken;
    private String appToken;

    private MyelinSecurity(TestCertificates certificates, boolean accessControl) {
        this.certificates = certificates;
        this.accessControl = accessControl;
        this.adminToken = accessControl ? "admin-" + UUID.randomUUID() : null;
        this.sharedAppToken = accessControl ? "app-" + UUID.randomUUID() : null;
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

    /**
     * THE token applications and tests use as "an application" (GiftCardApp settings, raw gRPC, non-admin REST);
     * {@code null} without access control. Worked out once and kept, so every node of a cluster and every restart
     * hand out the same one.
     * <p>
     * Today: the shared application token given to the server as {@code axoniq.axonserver.accesscontrol.token}.
     * To use an application registered through REST instead, change only this method: on first call,
     * {@code POST /v1/applications} through {@code via} ({@code via.adminRequest("/v1/applications")} sent with
     * {@code via.http()}) with JSON {@code {"applicationName":..,"description":..,"roles":[{"context":"default",
     * "roles":["USE_CONTEXT"]}]}}, and keep the text/plain answer as the token.
     *
     * @param via the server (a running node, for a cluster) to obtain the token from
     */
    public synchronized String appToken(MyelinServer via) {
        if (!accessControl) {
            return null;
        }
        if (appToken == null) {
            appToken = sharedAppToken;
        }
        return appToken;
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
            settings.add("axoniq.axonserver.accesscontrol.token=" + sharedAppToken);
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
