package dev.myelin.axonapp;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * A gRPC client interceptor installed on the connector's channel (through Axon's
 * {@code ManagedChannelCustomizer}): records every call the real connector makes to the server and how it
 * ended (status code, {@code axoniq-errorcode} trailer, description). Tests use it to prove which RPCs the
 * framework used and to show exactly what the server answered.
 */
public final class RpcRecorder implements ClientInterceptor {

    static final Metadata.Key<String> ERROR_CODE = Metadata.Key.of("axoniq-errorcode",
                                                                    Metadata.ASCII_STRING_MARSHALLER);

    /**
     * {@code code == null} for a call that was started ({@code message == null}) or a message sent ("&gt;") or
     * received ("&lt;") on an instruction stream; set when the call closed. {@code authority}: the
     * {@code host:port} of the server the call went to (the connector opens one channel per server it talks to,
     * e.g. a routing server first and then the node {@code GetPlatformServer} sent it to).
     */
    public record Call(Instant at, String method, Status.Code code, String errorCode, String description,
                       String message, String authority) {

        Call(Instant at, String method, Status.Code code, String errorCode, String description) {
            this(at, method, code, errorCode, description, null, null);
        }

        Call(Instant at, String method, Status.Code code, String errorCode, String description, String message) {
            this(at, method, code, errorCode, description, message, null);
        }

        public boolean started() {
            return code == null && message == null;
        }

        public boolean isMessage() {
            return message != null;
        }

        @Override
        public String toString() {
            String where = authority == null ? "" : " @" + authority;
            if (message != null) {
                return at + " " + message + " on " + method + where;
            }
            return started() ? at + " start " + method + where
                    : at + " close " + method + where + " " + code + (errorCode == null ? "" : " " + errorCode)
                      + (description == null ? "" : " \"" + description + "\"");
        }
    }

    private final List<Call> calls = new ArrayList<>();
    /** Instruction ids of command/query subscriptions sent on the handler streams and not acknowledged yet. */
    private final java.util.Set<String> unacknowledged = java.util.concurrent.ConcurrentHashMap.newKeySet();

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions callOptions,
                                                 Channel next) {
        String name = method.getFullMethodName();
        String authority = next.authority();
        // messages of the instruction streams and routing calls (not of event streams: too many)
        boolean traced = !name.startsWith("io.axoniq.axonserver.grpc.event.");
        java.util.Set<String> subscriptionsOfThisCall = java.util.concurrent.ConcurrentHashMap.newKeySet();
        return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, callOptions)) {
            @Override
            public void sendMessage(Q message) {
                trackSubscription(message, subscriptionsOfThisCall);
                if (traced) {
                    add(new Call(Instant.now(), name, null, null, null, "> " + describe(message), authority));
                }
                super.sendMessage(message);
            }

            @Override
            public void start(Listener<R> responseListener, Metadata headers) {
                add(new Call(Instant.now(), name, null, null, null, null, authority));
                super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(responseListener) {
                    @Override
                    public void onMessage(R message) {
                        trackAck(message);
                        if (traced) {
                            add(new Call(Instant.now(), name, null, null, null, "< " + describe(message), authority));
                        }
                        super.onMessage(message);
                    }

                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        // a closed handler stream has nothing left to acknowledge (the connector resubscribes
                        // on a new stream)
                        unacknowledged.removeAll(subscriptionsOfThisCall);
                        add(new Call(Instant.now(), name, status.getCode(),
                                     trailers == null ? null : trailers.get(ERROR_CODE), status.getDescription(),
                                     null, authority));
                        super.onClose(status, trailers);
                    }
                }, headers);
            }
        };
    }

    private void trackSubscription(Object message, java.util.Set<String> ofThisCall) {
        String id = null;
        if (message instanceof io.axoniq.axonserver.grpc.command.CommandProviderOutbound out && out.hasSubscribe()) {
            id = out.getInstructionId();
        } else if (message instanceof io.axoniq.axonserver.grpc.query.QueryProviderOutbound out && out.hasSubscribe()) {
            id = out.getInstructionId();
        }
        if (id != null) {
            ofThisCall.add(id);
            unacknowledged.add(id);
        }
    }

    private void trackAck(Object message) {
        if (message instanceof io.axoniq.axonserver.grpc.command.CommandProviderInbound in && in.hasAck()) {
            unacknowledged.remove(in.getAck().getInstructionId());
        } else if (message instanceof io.axoniq.axonserver.grpc.query.QueryProviderInbound in && in.hasAck()) {
            unacknowledged.remove(in.getAck().getInstructionId());
        }
    }

    /** Command and query subscriptions the server has not acknowledged yet. */
    public java.util.Set<String> unacknowledgedSubscriptions() {
        return java.util.Set.copyOf(unacknowledged);
    }

    /** The set top-level fields of a protobuf message, e.g. {@code subscribe,instruction_id}. */
    private static String describe(Object message) {
        if (message instanceof com.google.protobuf.Message proto) {
            StringBuilder fields = new StringBuilder(proto.getDescriptorForType().getName()).append('{');
            proto.getAllFields().forEach((field, value) -> {
                fields.append(field.getName());
                if (value instanceof String text && text.length() <= 80) {
                    fields.append('=').append(text);
                } else if (value instanceof com.google.protobuf.Message inner) {
                    String text = inner.toString().replace('\n', ' ').trim();
                    fields.append("={").append(text.length() <= 300 ? text : text.substring(0, 300) + "...").append('}');
                }
                fields.append(' ');
            });
            return fields.toString().trim() + "}";
        }
        return String.valueOf(message);
    }

    private synchronized void add(Call call) {
        calls.add(call);
    }

    public synchronized List<Call> calls() {
        return List.copyOf(calls);
    }

    /** Calls started for a method whose full name ends with {@code suffix}, e.g. {@code "EventStore/AppendEvent"}. */
    public long started(String suffix) {
        return calls().stream().filter(c -> c.started() && c.method().endsWith(suffix)).count();
    }

    /** Starts of calls for a method whose full name ends with {@code suffix}, oldest first. */
    public List<Call> starts(String suffix) {
        return calls().stream().filter(c -> c.started() && c.method().endsWith(suffix)).toList();
    }

    public List<Call> closedWith(Status.Code code) {
        return calls().stream().filter(c -> code.equals(c.code())).toList();
    }
}
