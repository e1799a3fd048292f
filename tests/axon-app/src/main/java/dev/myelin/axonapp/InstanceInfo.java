package dev.myelin.axonapp;

/**
 * Who this application instance is. Registered as a configuration component, so handlers can take it as a
 * parameter (Axon resolves handler parameters from the configuration).
 */
public record InstanceInfo(String componentName, String instanceName) {
}
