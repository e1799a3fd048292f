package dev.myelin.axonapp.support;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.myelin.axonapp.GiftCardApp;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;

/**
 * A Raft cluster of real {@code myelin} processes on loopback, formed the way Axon Server EE's autocluster is:
 * every node gets its own ports and data directory ({@link MyelinServer}), advertises {@code 127.0.0.1}, and names
 * node 0's internal port in {@code axoniq.axonserver.autocluster.first}. Node {@code i} is called
 * {@code <name>-node-<i>} (in the health JSON, {@code /v1/cluster} and {@code GetPlatformServer} answers); its
 * output goes to {@code target/myelin-logs/<name>-node-<i>-<n>.log}. Nodes are stopped by their own process
 * handles only.
 * <p>
 * Every node is secured the same way, by one {@link MyelinSecurity} (default {@link MyelinSecurity#secure()}): the
 * same certificate (also for the cluster port, where nodes verify each other against the suite's CA, given as
 * {@code ssl.internal-trust-manager-file}), the same admin and application tokens, and the same
 * {@code accesscontrol.internal-token}. Applications get {@link #appSettings(String)}.
 */
public final class MyelinCluster implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** What one node's {@code /actuator/health} says: HTTP status, raft role and the leader it knows. */
    public record Health(int status, String role, String leader, long term, String body) {

        public boolean up() {
            return status == 200;
        }

        @Override
        public String toString() {
            return status + " " + role + " term " + term + " leader " + leader;
        }
    }

    private final List<MyelinServer> nodes;
    private final MyelinSecurity security;

    private MyelinCluster(List<MyelinServer> nodes, MyelinSecurity security) {
        this.nodes = nodes;
        this.security = security;
    }

    /**
     * Starts {@code size} nodes at once, with TLS and access control, and waits until they are all healthy and agree
     * on one leader.
     */
    public static MyelinCluster start(String name, int size, Duration timeout, String... settings) {
        return start(name, size, timeout, MyelinSecurity.secure(), settings);
    }

    /** Starts {@code size} nodes secured as {@code security} says; see {@link #start(String, int, Duration, String...)}. */
    public static MyelinCluster start(String name, int size, Duration timeout, MyelinSecurity security,
                                      String... settings) {
        int[][] ports = new int[size][3];
        try {
            for (int[] p : ports) {
                p[0] = MyelinServer.freePort();
                p[1] = MyelinServer.freePort();
                p[2] = MyelinServer.freePort();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        List<MyelinServer> nodes = new ArrayList<>();
        MyelinCluster cluster = new MyelinCluster(nodes, security);
        try {
            for (int i = 0; i < size; i++) {
                List<String> nodeSettings = new ArrayList<>(List.of(
                        "axoniq.axonserver.hostname=127.0.0.1",
                        "axoniq.axonserver.internal-hostname=127.0.0.1",
                        "axoniq.axonserver.autocluster.first=127.0.0.1:" + ports[0][2]));
                nodeSettings.addAll(List.of(settings));
                nodes.add(MyelinServer.launchUnchecked(name + "-node-" + i, security, ports[i][0], ports[i][1],
                                                       ports[i][2], nodeSettings));
            }
            cluster.awaitAgreedLeader(nodes, timeout);
            return cluster;
        } catch (RuntimeException | Error e) {
            System.out.println("=== cluster " + name + " did not form:\n" + cluster.describe(60));
            cluster.close();
            throw e;
        }
    }

    /** {@code 127.0.0.1:<gRPC port>}: what the nodes advertise, so what {@code GetPlatformServer} sends clients to. */
    public static String address(MyelinServer node) {
        return "127.0.0.1:" + node.grpcPort();
    }

    public MyelinSecurity security() {
        return security;
    }

    /** The application token ({@link MyelinSecurity#appToken}), obtained through a running node. */
    public String appToken() {
        return security.appToken(running().isEmpty() ? nodes.get(0) : running().get(0));
    }

    /** Settings for an application with {@code servers} as routing servers, the CA and {@link #appToken()}. */
    public GiftCardApp.Settings appSettings(String servers) {
        return security.appSettings(servers, running().isEmpty() ? nodes.get(0) : running().get(0));
    }

    public List<MyelinServer> nodes() {
        return List.copyOf(nodes);
    }

    public List<MyelinServer> running() {
        return nodes.stream().filter(MyelinServer::isRunning).toList();
    }

    /** {@code /actuator/health} of a node; status 0 when it does not answer. */
    public static Health health(MyelinServer node) {
        HttpResponse<String> response = node.isRunning() ? node.health() : null;
        if (response == null) {
            return new Health(0, null, null, -1, "no answer");
        }
        try {
            JsonNode raft = JSON.readTree(response.body()).path("components").path("raft").path("details");
            return new Health(response.statusCode(), text(raft.path("role")), text(raft.path("leader")),
                              raft.path("term").asLong(-1), response.body());
        } catch (IOException e) {
            return new Health(response.statusCode(), null, null, -1, response.body());
        }
    }

    private static String text(JsonNode node) {
        return node.isTextual() ? node.asText() : null;
    }

    /**
     * The leader, if every running node is healthy and names the same node as leader, and that node is running and
     * calls itself LEADER.
     */
    public Optional<MyelinServer> agreedLeader() {
        return agreedLeader(running());
    }

    private Optional<MyelinServer> agreedLeader(List<MyelinServer> among) {
        List<Health> health = among.stream().map(MyelinCluster::health).toList();
        if (health.isEmpty() || !health.stream().allMatch(Health::up)) {
            return Optional.empty();
        }
        String leader = health.get(0).leader();
        if (leader == null || !health.stream().allMatch(h -> leader.equals(h.leader()))) {
            return Optional.empty();
        }
        for (int i = 0; i < among.size(); i++) {
            if (among.get(i).name().equals(leader)) {
                return "LEADER".equals(health.get(i).role()) ? Optional.of(among.get(i)) : Optional.empty();
            }
        }
        return Optional.empty(); // the named leader is not among the running nodes (yet)
    }

    /** Waits until every running node is healthy and they agree on a leader among them; returns it. */
    public MyelinServer awaitAgreedLeader(Duration timeout) {
        return awaitAgreedLeader(running(), timeout);
    }

    private MyelinServer awaitAgreedLeader(List<MyelinServer> among, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            for (MyelinServer node : among) {
                if (!node.isRunning()) {
                    throw new IllegalStateException(node + " exited; log:\n" + node.logTail());
                }
            }
            Optional<MyelinServer> leader = agreedLeader(among);
            if (leader.isPresent()) {
                return leader.get();
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no agreed leader after " + timeout.toMillis() + " ms: " + healthSummary());
            }
            Await.sleep(100);
        }
    }

    /** Running nodes other than {@code leader}. */
    public List<MyelinServer> others(MyelinServer leader) {
        return running().stream().filter(n -> n != leader).toList();
    }

    /** One line per node: its name, whether it runs, and what its health endpoint says. */
    public String healthSummary() {
        return nodes.stream().map(n -> n.name() + (n.isRunning() ? "" : " (stopped)") + ": " + health(n))
                    .collect(Collectors.joining("; "));
    }

    /** Health and the last {@code lines} log lines of every node, for failure reports. */
    public String describe(int lines) {
        StringBuilder text = new StringBuilder();
        for (MyelinServer node : nodes) {
            text.append("--- ").append(node).append(node.isRunning() ? "" : " (not running)").append(", health: ")
                .append(health(node)).append(", last lines:\n").append(node.logTail(lines)).append('\n');
        }
        return text.toString();
    }

    /** Stops every node at once (SIGTERM, SIGKILL after 15 s) and deletes the data directories. */
    @Override
    public void close() {
        CompletableFuture.allOf(nodes.stream().map(n -> CompletableFuture.runAsync(n::close))
                                     .toArray(CompletableFuture[]::new)).join();
    }

    @Override
    public String toString() {
        return "cluster " + nodes;
    }
}
