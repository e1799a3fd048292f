package dev.myelin.axonapp.support;

import dev.myelin.axonapp.GiftCardApp;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannelBuilder;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * One real {@code myelin} process: the binary from system property {@code myelin.binary} (default
 * {@code ../../target/release/myelin}, relative to this Maven module), free loopback ports, its own temporary
 * data directory and working directory. Stopped by its own {@link Process} handle only.
 * Output goes to {@code target/myelin-logs/<name>-<n>.log}.
 * <p>
 * Secured by default ({@link MyelinSecurity#secure()}): TLS on the gRPC, HTTP and cluster ports, access control with
 * an admin and an application token. What clients need comes from here: {@link #appSettings()} for a
 * {@link GiftCardApp}, {@link #channelBuilder()} (+ {@link MyelinSecurity#tokenInterceptor}) for raw gRPC,
 * {@link #http()} with {@link #request}/{@link #adminRequest} for REST, and {@link #caFile()}, {@link #appToken()},
 * {@link #adminToken()} for anything else.
 */
public final class MyelinServer implements AutoCloseable {

    private static final AtomicInteger STARTS = new AtomicInteger();
    private final String name;
    private final MyelinSecurity security;
    private final HttpClient http;
    private final List<String> settings;
    private final Path binary;
    private final Path dataDir;
    private final Path logFile;
    private final int grpcPort;
    private final int httpPort;
    private final int internalPort;
    private Process process;
    private int restarts;

    private MyelinServer(String name, MyelinSecurity security, List<String> settings, int grpcPort, int httpPort,
                         int internalPort) throws IOException {
        this.name = name;
        this.security = security;
        HttpClient.Builder http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2));
        if (security.tls()) {
            http.sslContext(security.certificates().sslContext());
        }
        this.http = http.build();
        this.settings = settings;
        this.binary = binary();
        this.dataDir = Files.createTempDirectory("myelin-" + name + "-");
        Path logs = Paths.get("target", "myelin-logs").toAbsolutePath();
        Files.createDirectories(logs);
        this.logFile = logs.resolve(name + "-" + STARTS.incrementAndGet() + ".log");
        this.grpcPort = grpcPort;
        this.httpPort = httpPort;
        this.internalPort = internalPort;
    }

    /**
     * Starts a node with TLS and access control ({@link MyelinSecurity#secure()}) and waits until
     * {@code /actuator/health} answers 200.
     *
     * @param settings extra {@code key=value} properties, passed as {@code --set} (after the security ones, so they
     *                 win)
     */
    public static MyelinServer start(String name, String... settings) {
        return start(name, MyelinSecurity.secure(), settings);
    }

    /** Starts a node without TLS and without access control: only for a test that truly needs plaintext. */
    public static MyelinServer plain(String name, String... settings) {
        return start(name, MyelinSecurity.plain(), settings);
    }

    /** Starts a node secured as {@code security} says and waits until {@code /actuator/health} answers 200. */
    public static MyelinServer start(String name, MyelinSecurity security, String... settings) {
        try {
            MyelinServer server = new MyelinServer(name, security, List.of(settings), freePort(), freePort(),
                                                   freePort());
            server.launch(true);
            return server;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Starts a node on the given ports without waiting for it to become healthy (a cluster member is healthy only
     * once the cluster has a leader and the node caught up; see {@link MyelinCluster}).
     */
    static MyelinServer launchUnchecked(String name, MyelinSecurity security, int grpcPort, int httpPort,
                                        int internalPort, List<String> settings) {
        try {
            MyelinServer server = new MyelinServer(name, security, List.copyOf(settings), grpcPort, httpPort,
                                                   internalPort);
            server.launch(false);
            return server;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static Path binary() {
        Path path = Paths.get(System.getProperty("myelin.binary", "../../target/release/myelin")).toAbsolutePath()
                         .normalize();
        if (!Files.isExecutable(path)) {
            throw new IllegalStateException("myelin binary not found at " + path + " (build it with `cargo build "
                                                    + "--release` or pass -Dmyelin.binary=/path/to/myelin)");
        }
        return path;
    }

    private void launch(boolean awaitHealthy) throws IOException {
        List<String> command = new ArrayList<>(List.of(
                binary.toString(), "serve",
                "--port", String.valueOf(grpcPort),
                "--http-port", String.valueOf(httpPort),
                "--data", dataDir.resolve("data").toString(),
                "--set", "axoniq.axonserver.internal-port=" + internalPort,
                "--set", "axoniq.axonserver.hostname=localhost",
                "--set", "axoniq.axonserver.name=" + name));
        List<String> all = new ArrayList<>(security.serverSettings());
        all.addAll(settings);
        for (String setting : all) {
            command.add("--set");
            command.add(setting);
        }
        // first start truncates (a log per process start), restarts append
        Files.writeString(logFile, "### " + String.join(" ", command) + "\n", java.nio.file.StandardOpenOption.CREATE,
                          restarts == 0 ? java.nio.file.StandardOpenOption.TRUNCATE_EXISTING
                                  : java.nio.file.StandardOpenOption.APPEND,
                          java.nio.file.StandardOpenOption.WRITE);
        process = new ProcessBuilder(command)
                .directory(dataDir.toFile()) // no axonserver.properties from the build tree
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                .start();
        if (awaitHealthy) {
            awaitHealthy(Duration.ofSeconds(30));
        }
    }

    /** The node's {@code /actuator/health}: status code and body; {@code null} when it does not answer. */
    HttpResponse<String> health() {
        try {
            return http.send(healthRequest(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private void awaitHealthy(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        String last = "no answer";
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new IllegalStateException("myelin exited with " + process.exitValue() + "; log: " + logTail());
            }
            try {
                HttpResponse<String> response = http.send(healthRequest(), HttpResponse.BodyHandlers.ofString());
                if (response.statusCode() == 200) {
                    return;
                }
                last = response.statusCode() + " " + response.body();
            } catch (IOException e) {
                last = e.toString();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            sleep(100);
        }
        throw new IllegalStateException("myelin not healthy after " + timeout + ": " + last + "; log: " + logTail());
    }

    private HttpRequest healthRequest() {
        return HttpRequest.newBuilder(URI.create(baseUrl() + "/actuator/health")).timeout(Duration.ofSeconds(2))
                          .GET().build();
    }

    /** host:port for {@code AxonServerConfiguration.servers}. */
    public String address() {
        return "localhost:" + grpcPort;
    }

    public MyelinSecurity security() {
        return security;
    }

    /** The CA to trust; {@code null} without TLS. */
    public Path caFile() {
        return security.caFile();
    }

    /** The application token ({@link MyelinSecurity#appToken}); {@code null} without access control. */
    public String appToken() {
        return security.appToken(this);
    }

    /** The admin token; {@code null} without access control. */
    public String adminToken() {
        return security.adminToken();
    }

    /**
     * Settings for an application of this node: its gRPC address, the CA ({@code axon.axonserver.ssl-enabled} and
     * {@code cert-file}) and the application token.
     */
    public GiftCardApp.Settings appSettings() {
        return security.appSettings(address(), this);
    }

    /** {@code https://127.0.0.1:<http port>} ({@code http://} without TLS); the certificate names 127.0.0.1. */
    public String baseUrl() {
        return (security.tls() ? "https" : "http") + "://127.0.0.1:" + httpPort;
    }

    /** An HTTP client that trusts the suite's CA (connect timeout 2 s). */
    public HttpClient http() {
        return http;
    }

    /** A REST request to {@code path} (e.g. {@code /v1/public}) with the application token, timeout 30 s. */
    public HttpRequest.Builder request(String path) {
        return request(path, appToken());
    }

    /** A REST request to {@code path} with the admin token (admin-only endpoints: processor control, ...). */
    public HttpRequest.Builder adminRequest(String path) {
        return request(path, adminToken());
    }

    /** A REST request to {@code path} carrying {@code token} ({@code null}: no token header). */
    public HttpRequest.Builder request(String path, String token) {
        return MyelinSecurity.withToken(HttpRequest.newBuilder(URI.create(baseUrl() + path))
                                                   .timeout(Duration.ofSeconds(30)), token);
    }

    /** Sends {@code request} with {@link #http()}, body as a string. */
    public HttpResponse<String> send(HttpRequest request) throws IOException, InterruptedException {
        return http.send(request, HttpResponse.BodyHandlers.ofString());
    }

    /** The transport credentials a client of this node uses: TLS trusting the suite's CA, or plaintext. */
    public ChannelCredentials channelCredentials() {
        return security.tls() ? security.certificates().channelCredentials() : InsecureChannelCredentials.create();
    }

    /**
     * A gRPC channel builder for {@code localhost:<gRPC port>} with {@link #channelCredentials()} and no token; add
     * {@code .intercept(MyelinSecurity.tokenInterceptor(server.appToken()))} for an authenticated channel.
     */
    public ManagedChannelBuilder<?> channelBuilder() {
        return Grpc.newChannelBuilderForAddress("localhost", grpcPort, channelCredentials());
    }

    public int grpcPort() {
        return grpcPort;
    }

    public int httpPort() {
        return httpPort;
    }

    public int internalPort() {
        return internalPort;
    }

    public String name() {
        return name;
    }

    public long pid() {
        return process.pid();
    }

    public boolean isRunning() {
        return process != null && process.isAlive();
    }

    /** Graceful stop: SIGTERM to this process, then SIGKILL after 15 s. */
    public void stop() {
        if (process == null || !process.isAlive()) {
            return;
        }
        process.destroy();
        try {
            if (!process.waitFor(15, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Crash: SIGKILL to this process. */
    public void kill() {
        if (process == null || !process.isAlive()) {
            return;
        }
        try {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Starts the binary again on the same ports and data directory. */
    public void restart() {
        if (isRunning()) {
            throw new IllegalStateException("still running");
        }
        restarts++;
        try {
            launch(true);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public int restarts() {
        return restarts;
    }

    public Path logFile() {
        return logFile;
    }

    public String logTail() {
        return logTail(40);
    }

    public String logTail(int count) {
        try {
            List<String> lines = Files.readAllLines(logFile);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - count), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    @Override
    public void close() {
        stop();
        try (Stream<Path> files = Files.walk(dataDir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // temp dir; best effort
        }
    }

    @Override
    public String toString() {
        return "myelin " + name + " (pid " + (process == null ? "-" : process.pid()) + ", grpc " + grpcPort
                + ", http " + httpPort + ", log " + logFile + ")";
    }

    static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            socket.setReuseAddress(true);
            return socket.getLocalPort();
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
