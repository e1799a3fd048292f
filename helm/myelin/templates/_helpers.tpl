{{/*
Names, labels and the per-pod DNS names shared by the templates.
*/}}

{{- define "myelin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, plus the chart name unless the release name already contains it.
Truncated so that "<fullname>-headless" and the pod names stay within DNS label limits.
*/}}
{{- define "myelin.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "myelin.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the Myelin pods. Immutable on a StatefulSet: never add anything that changes
between releases (such as the chart version). The component label keeps the `helm test` pod out of
the Services and the PodDisruptionBudget.
*/}}
{{- define "myelin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "myelin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "myelin.labels" -}}
helm.sh/chart: {{ include "myelin.chart" . }}
app.kubernetes.io/name: {{ include "myelin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: myelin
{{- end }}

{{- define "myelin.headlessName" -}}
{{- printf "%s-headless" (include "myelin.fullname" .) }}
{{- end }}

{{/*
DNS suffix of every pod: "<headless>.<namespace>.svc.<clusterDomain>".
*/}}
{{- define "myelin.podDomain" -}}
{{- printf "%s.%s.svc.%s" (include "myelin.headlessName" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/*
Internal address of the node that creates the cluster: pod 0 unless cluster.first says otherwise.
Fixed, not derived from replicas, so scaling does not change the pod template.
*/}}
{{- define "myelin.autoclusterFirst" -}}
{{- if .Values.cluster.first }}
{{- .Values.cluster.first }}
{{- else }}
{{- printf "%s-0.%s:%d" (include "myelin.fullname" .) (include "myelin.podDomain" .) (int .Values.ports.internal) }}
{{- end }}
{{- end }}

{{/*
"host:port" of every pod's gRPC port, comma-separated (axon.axonserver.servers).
*/}}
{{- define "myelin.servers" -}}
{{- $fullname := include "myelin.fullname" . }}
{{- $domain := include "myelin.podDomain" . }}
{{- $servers := list }}
{{- range $i := until (int .Values.replicas) }}
{{- $servers = append $servers (printf "%s-%d.%s:%d" $fullname $i $domain (int $.Values.ports.grpc)) }}
{{- end }}
{{- join "," $servers }}
{{- end }}

{{- define "myelin.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "myelin.testImage" -}}
{{- if .Values.tests.image.digest }}
{{- printf "%s@%s" .Values.tests.image.repository .Values.tests.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.tests.image.repository .Values.tests.image.tag }}
{{- end }}
{{- end }}

{{/*
The Secret the chart generates tokens into.
*/}}
{{- define "myelin.tokenSecretName" -}}
{{- printf "%s-tokens" (include "myelin.fullname" .) }}
{{- end }}

{{/*
Tokens in use, as a list of dicts: env (variable), secret (name), key, generated (bool).
The internal token is always used; the admin and application tokens only with access control on.
*/}}
{{- define "myelin.tokens" -}}
{{- $generated := include "myelin.tokenSecretName" . }}
{{- $ac := .Values.accessControl }}
{{- $tokens := list }}
{{- if $ac.enabled }}
{{- $tokens = append $tokens (dict "env" "AXONIQ_AXONSERVER_ACCESSCONTROL_ADMIN_TOKEN" "secret" (default $generated $ac.adminToken.existingSecret) "key" $ac.adminToken.key "generated" (not $ac.adminToken.existingSecret)) }}
{{- if $ac.appToken.enabled }}
{{- $tokens = append $tokens (dict "env" "AXONIQ_AXONSERVER_ACCESSCONTROL_TOKEN" "secret" (default $generated $ac.appToken.existingSecret) "key" $ac.appToken.key "generated" (not $ac.appToken.existingSecret)) }}
{{- end }}
{{- end }}
{{- $tokens = append $tokens (dict "env" "AXONIQ_AXONSERVER_ACCESSCONTROL_INTERNAL_TOKEN" "secret" (default $generated $ac.internalToken.existingSecret) "key" $ac.internalToken.key "generated" (not $ac.internalToken.existingSecret)) }}
{{- toJson $tokens }}
{{- end }}

{{/*
storageClassName of a volume claim template: "-" gives "" (no dynamic provisioning), "" leaves it
out (the cluster's default class).
*/}}
{{- define "myelin.storageClass" -}}
{{- if eq .class "-" }}
storageClassName: ""
{{- else if .class }}
storageClassName: {{ .class | quote }}
{{- end }}
{{- end }}

{{/*
TLS: where the Secret named by tls.existingSecret is mounted (a directory, never subPath, so a
rotated Secret reaches the running pods), and the scheme of everything that talks to the HTTP port.
*/}}
{{- define "myelin.tlsDir" -}}
/axonserver/tls
{{- end }}

{{/*
The TLS Secret's name; rendering stops with this message when TLS is on without one. (helm lint
only logs it: Helm's lint mode does not stop on `fail` or `required`.)
*/}}
{{- define "myelin.tlsSecret" -}}
{{- if not .Values.tls.existingSecret }}
{{- fail "tls.enabled is true but tls.existingSecret is empty: name a Secret with tls.crt (certificate chain, leaf first), tls.key and ca.crt (PEM). The chart does not create certificates; see the TLS section of the chart README for the SANs it needs." }}
{{- end }}
{{- .Values.tls.existingSecret }}
{{- end }}

{{- define "myelin.httpScheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}
