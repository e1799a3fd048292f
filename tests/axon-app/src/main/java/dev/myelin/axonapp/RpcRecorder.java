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

    /** {@code code == null} for a call that was started; set when it closed. */
    public record Call(Instant at, String method, Status.Code code, String errorCode, String description) {

        public boolean started() {
            return code == null;
        }

        @Override
        public String toString() {
            return started() ? at + " start " + method
                    : at + " close " + method + " " + code + (errorCode == null ? "" : " " + errorCode)
                      + (description == null ? "" : " \"" + description + "\"");
        }
    }

    private final List<Call> calls = new ArrayList<>();

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions callOptions,
                                                 Channel next) {
        String name = method.getFullMethodName();
        return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, callOptions)) {
            @Override
            public void start(Listener<R> responseListener, Metadata headers) {
                add(new Call(Instant.now(), name, null, null, null));
                super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(responseListener) {
                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        add(new Call(Instant.now(), name, status.getCode(),
                                     trailers == null ? null : trailers.get(ERROR_CODE), status.getDescription()));
                        super.onClose(status, trailers);
                    }
                }, headers);
            }
        };
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

    public List<Call> closedWith(Status.Code code) {
        return calls().stream().filter(c -> code.equals(c.code())).toList();
    }
}
