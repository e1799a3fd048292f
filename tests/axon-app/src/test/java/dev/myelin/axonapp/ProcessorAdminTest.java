package dev.myelin.axonapp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.myelin.axonapp.Api.IssueCardCommand;
import dev.myelin.axonapp.support.Await;
import dev.myelin.axonapp.support.MyelinExtension;
import dev.myelin.axonapp.support.MyelinServer;
import org.axonframework.eventhandling.StreamingEventProcessor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 7: event processor control from Myelin's REST API reaches a real Axon Framework application as
 * platform-stream instructions, the framework carries them out, and its results come back in the HTTP answer:
 * pause and start the tracking processor, split and merge a segment of the pooled streaming one.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class ProcessorAdminTest {

    @RegisterExtension
    static final MyelinExtension myelin = new MyelinExtension();

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String COMPONENT = "admin-app";

    private record Reply(int status, JsonNode body) {
    }

    /**
     * A REST call over HTTPS: reads with the application token, processor control (PATCH, admin-only) with the
     * admin token.
     */
    private static Reply call(String method, String path) throws Exception {
        MyelinServer server = myelin.server();
        HttpRequest request = (method.equals("GET") ? server.request(path) : server.adminRequest(path))
                .method(method, HttpRequest.BodyPublishers.noBody())
                .build();
        HttpResponse<String> response = server.send(request);
        return new Reply(response.statusCode(), JSON.readTree(response.body()));
    }

    /** The processor as Myelin lists it in Axon's shape, or null while the application has not reported it. */
    private static JsonNode listed(String processor) throws Exception {
        for (JsonNode node : call("GET", "/v1/components/" + COMPONENT + "/processors").body()) {
            if (node.path("name").asText().equals(processor)) {
                return node;
            }
        }
        return null;
    }

    private static int trackers(String processor) {
        try {
            JsonNode node = listed(processor);
            return node == null ? 0 : node.path("trackers").size();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static Reply act(String processor, String action, String tokenStore) throws Exception {
        return call("PATCH", "/v1/components/" + COMPONENT + "/processors/" + processor + "/" + action
                + "?tokenStoreIdentifier=" + tokenStore);
    }

    @Test
    void pauseStartSplitAndMergeAreCarriedOutByTheFramework() throws Exception {
        GiftCardApp app = myelin.startApp(myelin.settings().componentName(COMPONENT));
        app.commandGateway().sendAndWait(new IssueCardCommand(UUID.randomUUID().toString(), 10), 10, TimeUnit.SECONDS);
        Await.until(Duration.ofSeconds(20), "both processors report two claimed segments",
                    () -> trackers(CardLedger.PROCESSOR) == 2 && trackers(CardSummaryProjection.PROCESSOR) == 2);
        String tokenStore = listed(CardLedger.PROCESSOR).path("tokenStoreIdentifier").asText();
        assertFalse(tokenStore.isEmpty(), "the framework reports its token store");

        StreamingEventProcessor ledger = app.processor(CardLedger.PROCESSOR);
        Reply paused = act(CardLedger.PROCESSOR, "pause", tokenStore);
        assertEquals(200, paused.status(), paused.body().toString());
        assertTrue(paused.body().path("success").asBoolean(), paused.body().toString());
        assertEquals("SUCCESS", paused.body().path("result").asText(), "the framework reported its result");
        assertFalse(ledger.isRunning(), "the tracking processor is paused in the application");
        Await.until(Duration.ofSeconds(10), "Myelin lists it as one that can be started",
                    () -> canPlay(CardLedger.PROCESSOR));

        Reply started = act(CardLedger.PROCESSOR, "start", tokenStore);
        assertEquals(200, started.status(), started.body().toString());
        Await.until(Duration.ofSeconds(10), "the tracking processor runs again", ledger::isRunning);

        StreamingEventProcessor summary = app.processor(CardSummaryProjection.PROCESSOR);
        Reply split = act(CardSummaryProjection.PROCESSOR, "segments/split", tokenStore);
        assertEquals(200, split.status(), split.body().toString());
        Await.until(Duration.ofSeconds(20), "three segments after the split",
                    () -> summary.processingStatus().size() == 3
                            && trackers(CardSummaryProjection.PROCESSOR) == 3);

        Reply merged = act(CardSummaryProjection.PROCESSOR, "segments/merge", tokenStore);
        assertEquals(200, merged.status(), merged.body().toString());
        Await.until(Duration.ofSeconds(20), "two segments again after the merge",
                    () -> summary.processingStatus().size() == 2
                            && trackers(CardSummaryProjection.PROCESSOR) == 2);

        Reply unknown = act("no-such-processor", "pause", tokenStore);
        assertEquals(404, unknown.status(), unknown.body().toString());
        assertEquals("AXONIQ-2800", unknown.body().path("code").asText());
    }

    private static boolean canPlay(String processor) {
        try {
            JsonNode node = listed(processor);
            return node != null && node.path("canPlay").asBoolean();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
