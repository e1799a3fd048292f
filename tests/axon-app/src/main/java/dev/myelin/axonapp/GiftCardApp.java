package dev.myelin.axonapp;

import com.fasterxml.jackson.annotation.JsonAutoDetect;
import com.fasterxml.jackson.annotation.PropertyAccessor;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.axoniq.axonserver.connector.AxonServerConnection;
import org.axonframework.axonserver.connector.AxonServerConfiguration;
import org.axonframework.axonserver.connector.AxonServerConnectionManager;
import org.axonframework.axonserver.connector.ManagedChannelCustomizer;
import org.axonframework.axonserver.connector.command.AxonServerCommandBus;
import org.axonframework.axonserver.connector.event.axon.AxonServerEventScheduler;
import org.axonframework.commandhandling.CommandBus;
import org.axonframework.commandhandling.GenericCommandMessage;
import org.axonframework.commandhandling.gateway.CommandGateway;
import org.axonframework.commandhandling.gateway.DefaultCommandGateway;
import org.axonframework.common.jdbc.ConnectionProvider;
import org.axonframework.config.AggregateConfigurer;
import org.axonframework.config.Configuration;
import org.axonframework.config.Configurer;
import org.axonframework.config.DefaultConfigurer;
import org.axonframework.eventhandling.StreamingEventProcessor;
import org.axonframework.eventhandling.TrackingEventProcessorConfiguration;
import org.axonframework.eventhandling.gateway.EventGateway;
import org.axonframework.eventhandling.scheduling.EventScheduler;
import org.axonframework.eventhandling.tokenstore.TokenStore;
import org.axonframework.eventhandling.tokenstore.jdbc.GenericTokenTableFactory;
import org.axonframework.eventhandling.tokenstore.jdbc.JdbcTokenStore;
import org.axonframework.eventsourcing.EventCountSnapshotTriggerDefinition;
import org.axonframework.eventsourcing.eventstore.EventStore;
import org.axonframework.messaging.correlation.MessageOriginProvider;
import org.axonframework.messaging.correlation.SimpleCorrelationDataProvider;
import org.axonframework.messaging.interceptors.CorrelationDataInterceptor;
import org.axonframework.messaging.unitofwork.DefaultUnitOfWork;
import org.axonframework.modelling.command.Aggregate;
import org.axonframework.queryhandling.QueryGateway;
import org.axonframework.serialization.Serializer;
import org.axonframework.serialization.json.JacksonSerializer;

import java.sql.DriverManager;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The gift card application, configured the way a plain (non-Spring) Axon Framework 4 application is: the
 * {@link DefaultConfigurer} with the {@code axon-server-connector} on the class path (its
 * {@code ServerConnectorConfigurerModule} installs the Axon Server command bus, query bus and event store),
 * Jackson serialization, a JDBC token store (H2), an event-sourced aggregate with a snapshot trigger, a
 * pooled streaming projection and a tracking ledger, and Axon Server's event scheduler.
 * <p>
 * Aggregate loads: the event store the connector module builds always carries a snapshot filter, so Axon
 * 4.13 reads an aggregate as {@code ListAggregateSnapshots} (newest first, one at a time) followed by
 * {@code ListAggregateEvents} from the snapshot's sequence + 1; the one-call {@code allow_snapshots=true} path is
 * not reachable through its public builder.
 */
public final class GiftCardApp implements AutoCloseable {

    /**
     * Everything a test can vary. Defaults: component "giftcard-app", Myelin on localhost:8124 (system property
     * {@code myelin.grpc}, environment {@code MYELIN_GRPC}), plaintext unless a CA file is given (TLS trusting that
     * CA; {@code myelin.cert-file}, {@code MYELIN_CERT_FILE}), no token unless one is given ({@code myelin.token},
     * {@code MYELIN_TOKEN}), context "default".
     */
    public static final class Settings {

        private String servers = System.getProperty("myelin.grpc",
                                                    System.getenv().getOrDefault("MYELIN_GRPC", "localhost:8124"));
        private String sslCertFile = System.getProperty("myelin.cert-file", System.getenv("MYELIN_CERT_FILE"));
        private String componentName = "giftcard-app";
        private String instanceName = "giftcard-" + UUID.randomUUID().toString().substring(0, 8);
        private String context = "default";
        private String token = System.getProperty("myelin.token", System.getenv("MYELIN_TOKEN"));
        private boolean projections = true;
        private ProjectionDatabase database = new ProjectionDatabase();
        private String tokenStoreUrl = "jdbc:h2:mem:tokens-" + UUID.randomUUID() + ";DB_CLOSE_DELAY=-1";
        private int snapshotThreshold = 10;
        private long heartbeatInterval = 10_000;
        private long heartbeatTimeout = 7_500;
        private boolean awaitReady = true;
        private int[] flowControl;

        public Settings servers(String servers) {
            this.servers = servers;
            return this;
        }

        public Settings componentName(String componentName) {
            this.componentName = componentName;
            return this;
        }

        public Settings instanceName(String instanceName) {
            this.instanceName = instanceName;
            return this;
        }

        public Settings context(String context) {
            this.context = context;
            return this;
        }

        /** The access token ({@code axon.axonserver.token}); {@code null}: none. */
        public Settings token(String token) {
            this.token = token;
            return this;
        }

        /**
         * TLS trusting the CA in this PEM file ({@code axon.axonserver.ssl-enabled=true} and
         * {@code axon.axonserver.cert-file}); {@code null}: plaintext.
         */
        public Settings sslCertFile(String sslCertFile) {
            this.sslCertFile = sslCertFile;
            return this;
        }

        /** Without projections the instance only handles commands (no event processors, no query handlers). */
        public Settings projections(boolean projections) {
            this.projections = projections;
            return this;
        }

        public Settings database(ProjectionDatabase database) {
            this.database = database;
            return this;
        }

        /** JDBC URL of the token store; hand the same one to a restarted instance. */
        public Settings tokenStoreUrl(String tokenStoreUrl) {
            this.tokenStoreUrl = tokenStoreUrl;
            return this;
        }

        public Settings snapshotThreshold(int snapshotThreshold) {
            this.snapshotThreshold = snapshotThreshold;
            return this;
        }

        public Settings heartbeat(Duration interval, Duration timeout) {
            this.heartbeatInterval = interval.toMillis();
            this.heartbeatTimeout = timeout.toMillis();
            return this;
        }

        /**
         * Whether {@link #start} waits until the connector reports the connection ready (connected, and every
         * command/query subscription acknowledged by the server). Default true.
         */
        public Settings awaitReady(boolean awaitReady) {
            this.awaitReady = awaitReady;
            return this;
        }

        /**
         * Permits for the command, query and event streams (Axon's {@code FlowControlConfiguration}; defaults
         * 5000 permits, refills of 1250). Small windows make the server's permit accounting matter.
         */
        public Settings flowControl(int permits, int nrOfNewPermits, int newPermitsThreshold) {
            this.flowControl = new int[]{permits, nrOfNewPermits, newPermitsThreshold};
            return this;
        }

        public String instanceName() {
            return instanceName;
        }

        public String servers() {
            return servers;
        }

        public String token() {
            return token;
        }

        public String sslCertFile() {
            return sslCertFile;
        }

        public String componentName() {
            return componentName;
        }

        public ProjectionDatabase database() {
            return database;
        }

        public String tokenStoreUrl() {
            return tokenStoreUrl;
        }

        /** A copy, for starting another instance of the same deployment. */
        public Settings copy() {
            Settings s = new Settings();
            s.servers = servers;
            s.sslCertFile = sslCertFile;
            s.componentName = componentName;
            s.instanceName = instanceName;
            s.context = context;
            s.token = token;
            s.projections = projections;
            s.database = database;
            s.tokenStoreUrl = tokenStoreUrl;
            s.snapshotThreshold = snapshotThreshold;
            s.heartbeatInterval = heartbeatInterval;
            s.heartbeatTimeout = heartbeatTimeout;
            s.awaitReady = awaitReady;
            s.flowControl = flowControl;
            return s;
        }
    }

    /** Metadata key: a command carrying it runs the named hook (see {@link #onPrepareCommit}) before it commits. */
    public static final String COMMIT_HOOK = "commit-hook";

    private final Settings settings;
    private final RpcRecorder rpc = new RpcRecorder();
    private final Map<String, Runnable> commitHooks = new ConcurrentHashMap<>();
    private final AggregateConfigurer<GiftCard> giftCards;
    private final Configuration config;
    private final CommandGateway localCommandGateway;

    private GiftCardApp(Settings settings) {
        this.settings = settings;
        InstanceInfo instance = new InstanceInfo(settings.componentName, settings.instanceName);

        AxonServerConfiguration.Builder axonServerBuilder = AxonServerConfiguration.builder()
                                                                                   .servers(settings.servers)
                                                                                   .componentName(settings.componentName)
                                                                                   .clientId(settings.instanceName)
                                                                                   .context(settings.context);
        if (settings.sslCertFile != null) {
            axonServerBuilder.ssl(settings.sslCertFile);
        }
        if (settings.flowControl != null) {
            int[] f = settings.flowControl;
            axonServerBuilder.commandFlowControl(f[0], f[1], f[2])
                             .queryFlowControl(f[0], f[1], f[2])
                             .eventFlowControl(f[0], f[1], f[2]);
        }
        AxonServerConfiguration axonServer = axonServerBuilder.build();
        if (settings.token != null) {
            axonServer.setToken(settings.token);
        }
        AxonServerConfiguration.HeartbeatConfiguration heartbeat = new AxonServerConfiguration.HeartbeatConfiguration();
        heartbeat.setEnabled(true);
        heartbeat.setInterval(settings.heartbeatInterval);
        heartbeat.setTimeout(settings.heartbeatTimeout);
        axonServer.setHeartbeat(heartbeat);
        // report processor status soon after start (default: first report after 5 s, then every 500 ms)
        axonServer.setProcessorsNotificationInitialDelay(500);
        axonServer.setSuppressDownloadMessage(true);

        Serializer serializer = jacksonSerializer();
        giftCards = AggregateConfigurer.defaultConfiguration(GiftCard.class)
                                       .configureSnapshotTrigger(c -> new EventCountSnapshotTriggerDefinition(
                                               c.snapshotter(), settings.snapshotThreshold));

        Configurer configurer = DefaultConfigurer.defaultConfiguration();
        configurer.registerComponent(AxonServerConfiguration.class, c -> axonServer)
                  .registerComponent(ManagedChannelCustomizer.class, c -> builder -> builder.intercept(rpc))
                  .registerComponent(InstanceInfo.class, c -> instance)
                  .configureSerializer(c -> serializer)
                  .configureCorrelationDataProviders(c -> List.of(new MessageOriginProvider(),
                                                                  new SimpleCorrelationDataProvider("tenant")))
                  .registerComponent(EventScheduler.class, c -> AxonServerEventScheduler.builder()
                          .connectionManager(c.getComponent(AxonServerConnectionManager.class))
                          .eventSerializer(c.eventSerializer())
                          .build())
                  .configureAggregate(giftCards);
        if (settings.projections) {
            ProjectionDatabase database = settings.database;
            configurer.registerComponent(TokenStore.class, c -> tokenStore(settings, c.serializer()))
                      .registerComponent(CardSummaryProjection.class, c -> new CardSummaryProjection(
                              database, c.queryUpdateEmitter(), instance))
                      .registerQueryHandler(c -> c.getComponent(CardSummaryProjection.class))
                      .eventProcessing(processing -> processing
                              .registerPooledStreamingEventProcessor(
                                      CardSummaryProjection.PROCESSOR, Configuration::eventStore,
                                      (c, builder) -> builder.initialSegmentCount(2).batchSize(5))
                              .registerTrackingEventProcessor(
                                      CardLedger.PROCESSOR, Configuration::eventStore,
                                      c -> TrackingEventProcessorConfiguration.forParallelProcessing(2)
                                                                              .andInitialSegmentsCount(2)
                                                                              .andBatchSize(5))
                              .registerEventHandler(c -> c.getComponent(CardSummaryProjection.class))
                              .registerEventHandler(c -> new CardLedger(database, instance)));
        }

        config = configurer.buildConfiguration();
        CommandBus commandBus = config.commandBus();
        commandBus.registerHandlerInterceptor(new CorrelationDataInterceptor<>(config.correlationDataProviders()));
        commandBus.registerHandlerInterceptor((unitOfWork, chain) -> {
            Object hook = unitOfWork.getMessage().getMetaData().get(COMMIT_HOOK);
            if (hook != null) {
                unitOfWork.onPrepareCommit(u -> commitHooks.getOrDefault(hook.toString(), () -> {
                }).run());
            }
            return chain.proceed();
        });
        config.queryBus().registerHandlerInterceptor(
                new CorrelationDataInterceptor<>(config.correlationDataProviders()));
        config.eventScheduler(); // build it now so its lifecycle handlers are part of start()
        localCommandGateway = DefaultCommandGateway.builder()
                                                   .commandBus(((AxonServerCommandBus) commandBus).localSegment())
                                                   .build();
    }

    /**
     * Builds and starts an instance; returns once Axon's start phases have run and (unless disabled) the
     * instance is ready: connected, and every command and query subscription acknowledged by the server.
     * <p>
     * Why wait: Axon 4.13's {@code AxonServerCommandBus}/{@code AxonServerQueryBus} send their handler
     * subscriptions without waiting for the server's acks, so a command sent right after {@code start()} can
     * reach the server before the subscription and come back "No Handler for command" (AXONIQ-4000); the same
     * race is known with Axon Server (AxonFramework issue #1777). The connector's own readiness signal,
     * {@code AxonServerConnection.isReady()}, does not help on a first start: {@code CommandChannelImpl} opens the
     * stream before the first handler is in its map, so it reports the (empty) subscriptions complete at once
     * (axonserver-connector-java issue #463). So readiness is read from the acks on the wire
     * ({@link RpcRecorder#unacknowledgedSubscriptions()}).
     */
    public static GiftCardApp start(Settings settings) {
        GiftCardApp app = new GiftCardApp(settings);
        app.config.start();
        if (settings.awaitReady) {
            long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
            while (!app.connectionManager().isConnected(settings.context)
                    || !app.rpc.unacknowledgedSubscriptions().isEmpty()) {
                if (System.nanoTime() > deadline) {
                    app.shutdown();
                    throw new IllegalStateException(settings.instanceName + ": not ready after 15 s (connected: "
                                                            + app.connectionManager().isConnected(settings.context)
                                                            + ", subscriptions not acknowledged: "
                                                            + app.rpc.unacknowledgedSubscriptions() + ")");
                }
                try {
                    Thread.sleep(5);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(e);
                }
            }
        }
        return app;
    }

    public static ObjectMapper objectMapper() {
        ObjectMapper mapper = new ObjectMapper();
        mapper.setVisibility(PropertyAccessor.FIELD, JsonAutoDetect.Visibility.ANY);
        return mapper;
    }

    private static Serializer jacksonSerializer() {
        return JacksonSerializer.builder().objectMapper(objectMapper()).lenientDeserialization().build();
    }

    private static TokenStore tokenStore(Settings settings, Serializer serializer) {
        String url = settings.tokenStoreUrl;
        ConnectionProvider connections = () -> DriverManager.getConnection(url);
        JdbcTokenStore store = JdbcTokenStore.builder()
                                             .connectionProvider(connections)
                                             .serializer(serializer)
                                             .nodeId(settings.instanceName)
                                             .claimTimeout(Duration.ofSeconds(5))
                                             .build();
        synchronized (GiftCardApp.class) {
            store.createSchema(GenericTokenTableFactory.INSTANCE);
        }
        return store;
    }

    // --- what tests drive and inspect ---

    public Settings settings() {
        return settings;
    }

    public String instanceName() {
        return settings.instanceName;
    }

    public Configuration configuration() {
        return config;
    }

    /** Commands routed through Axon Server (CommandService.Dispatch). */
    public CommandGateway commandGateway() {
        return config.commandGateway();
    }

    /**
     * Commands handled by this instance only: the connector's local segment, which is what runs when Axon
     * Server routes a command to this instance. Uses the event store, but not command routing.
     */
    public CommandGateway localCommandGateway() {
        return localCommandGateway;
    }

    public QueryGateway queryGateway() {
        return config.queryGateway();
    }

    public EventGateway eventGateway() {
        return config.eventGateway();
    }

    public EventStore eventStore() {
        return config.eventStore();
    }

    public EventScheduler eventScheduler() {
        return config.eventScheduler();
    }

    public AxonServerConnectionManager connectionManager() {
        return config.getComponent(AxonServerConnectionManager.class);
    }

    /** The connector's connection to the configured context (raw Axon Server API). */
    public AxonServerConnection connection() {
        return connectionManager().getConnection(settings.context);
    }

    public ProjectionDatabase database() {
        return settings.database;
    }

    public RpcRecorder rpc() {
        return rpc;
    }

    public StreamingEventProcessor processor(String name) {
        return config.eventProcessingConfiguration()
                     .eventProcessor(name, StreamingEventProcessor.class)
                     .orElseThrow(() -> new IllegalArgumentException("no streaming processor " + name));
    }

    /** Runs {@code hook} in the prepare-commit phase of every command that carries {@link #COMMIT_HOOK}={@code name}. */
    public void onPrepareCommit(String name, Runnable hook) {
        commitHooks.put(name, hook);
    }

    /** Loads the aggregate through the application's event-sourcing repository (read-only unit of work). */
    public LoadedCard loadCard(String cardId) {
        DefaultUnitOfWork<?> unitOfWork = DefaultUnitOfWork.startAndGet(
                GenericCommandMessage.asCommandMessage("load " + cardId));
        try {
            Aggregate<GiftCard> aggregate = giftCards.repository().load(cardId);
            return new LoadedCard(aggregate.invoke(GiftCard::state), aggregate.version());
        } finally {
            unitOfWork.rollback();
        }
    }

    public record LoadedCard(GiftCard.State state, Long version) {
    }

    public void shutdown() {
        config.shutdown();
    }

    @Override
    public void close() {
        shutdown();
    }
}
