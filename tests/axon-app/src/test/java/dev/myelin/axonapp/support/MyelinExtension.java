package dev.myelin.axonapp.support;

import dev.myelin.axonapp.GiftCardApp;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Per test class: one fresh Myelin process (own ports, own data directory), started before the first test and
 * stopped after the last, with TLS and access control on ({@link MyelinSecurity#secure()}) unless told otherwise.
 * Applications started through {@link #startApp} are shut down after each test; {@link #settings()} gives them the
 * server's address, CA and application token.
 * <pre>
 * {@literal @}RegisterExtension static final MyelinExtension myelin = new MyelinExtension();
 * </pre>
 */
public final class MyelinExtension implements BeforeAllCallback, AfterAllCallback, AfterEachCallback {

    private static final Logger log = LoggerFactory.getLogger(MyelinExtension.class);

    private final MyelinSecurity security;
    private final String[] settings;
    private MyelinServer server;
    private final List<GiftCardApp> apps = Collections.synchronizedList(new ArrayList<>());

    /** @param settings extra Myelin properties ({@code key=value}) */
    public MyelinExtension(String... settings) {
        this(MyelinSecurity.secure(), settings);
    }

    /**
     * @param security how the server is secured (e.g. {@link MyelinSecurity#plain()} for a test that truly needs
     *                 plaintext)
     * @param settings extra Myelin properties ({@code key=value})
     */
    public MyelinExtension(MyelinSecurity security, String... settings) {
        this.security = security;
        this.settings = settings;
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        server = MyelinServer.start(context.getRequiredTestClass().getSimpleName(), security, settings);
        log.info("started {}", server);
    }

    @Override
    public void afterEach(ExtensionContext context) {
        List<GiftCardApp> running;
        synchronized (apps) {
            running = new ArrayList<>(apps);
            apps.clear();
        }
        if (context.getExecutionException().isPresent()) {
            // evidence for the report: what the real connector sent and what Myelin answered
            for (GiftCardApp app : running) {
                List<dev.myelin.axonapp.RpcRecorder.Call> calls = app.rpc().calls();
                System.out.println("=== " + context.getDisplayName() + " failed; gRPC calls of " + app.instanceName()
                                           + " (last 300 of " + calls.size() + ")");
                calls.subList(Math.max(0, calls.size() - 300), calls.size()).forEach(c -> System.out.println("  " + c));
            }
            System.out.println("=== " + server + ", last lines:\n" + server.logTail());
        }
        Collections.reverse(running);
        for (GiftCardApp app : running) {
            try {
                app.shutdown();
            } catch (RuntimeException e) {
                log.warn("shutting down {} failed", app.instanceName(), e);
            }
        }
    }

    @Override
    public void afterAll(ExtensionContext context) {
        if (server != null) {
            log.info("stopping {}", server);
            server.close();
        }
    }

    public MyelinServer server() {
        return server;
    }

    /** Settings pointing at this class's Myelin, with its CA and the application token. */
    public GiftCardApp.Settings settings() {
        return server.appSettings();
    }

    /** Starts an application instance; it is shut down after the current test. */
    public GiftCardApp startApp(GiftCardApp.Settings settings) {
        GiftCardApp app = GiftCardApp.start(settings);
        apps.add(app);
        return app;
    }

    /** Shuts an instance down now (and forgets it). */
    public void stopApp(GiftCardApp app) {
        apps.remove(app);
        app.shutdown();
    }
}
