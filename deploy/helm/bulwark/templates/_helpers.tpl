{{/*
Helpers. Only Go text/template, include, toYaml, nindent, indent, quote, default, required,
trunc, trimSuffix, printf and b64enc are used, so that deploy/check/render can render the chart
without Helm.
*/}}

{{- define "bulwark.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bulwark.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if eq .Release.Name $name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "bulwark.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "bulwark.labels" -}}
helm.sh/chart: {{ include "bulwark.chart" . }}
app.kubernetes.io/name: {{ include "bulwark.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector of the server's pods. */}}
{{- define "bulwark.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bulwark.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{/* Labels that pick the metrics Service (for the ServiceMonitor). */}}
{{- define "bulwark.metricsSelectorLabels" -}}
app.kubernetes.io/name: {{ include "bulwark.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: metrics
{{- end -}}

{{/* Selector of the migration Job's pods. */}}
{{- define "bulwark.migrateSelectorLabels" -}}
app.kubernetes.io/name: {{ include "bulwark.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: migrate
{{- end -}}

{{- define "bulwark.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bulwark.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bulwark.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret with `seed` and `database-url`. */}}
{{- define "bulwark.secretName" -}}
{{- default (include "bulwark.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* The Secret with `owner-database-url`, for the migration Job. */}}
{{- define "bulwark.migrationSecretName" -}}
{{- if .Values.migration.existingSecret -}}
{{- .Values.migration.existingSecret -}}
{{- else if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- printf "%s-migrate" (include "bulwark.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* http.trustedProxies as a TOML array, the value of BULWARK_HTTP__TRUSTED_PROXIES. */}}
{{- define "bulwark.trustedProxies" -}}
[{{ range $i, $p := .Values.http.trustedProxies }}{{ if $i }}, {{ end }}{{ $p | quote }}{{ end }}]
{{- end -}}

{{/* Egress rules every pod of the chart needs: PostgreSQL and DNS. */}}
{{- define "bulwark.egressPostgresAndDns" -}}
- ports:
    - port: {{ .Values.networkPolicy.postgres.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.postgres.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with .Values.networkPolicy.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "bulwark.scheme" -}}
{{- if .Values.tls.existingSecret -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/*
The pod-level settings the server and the Job share: no service links (Kubernetes would add
BULWARK_SERVICE_HOST and the like for a Service named bulwark, and Bulwark refuses unknown
BULWARK_* variables), no service-account token (Bulwark never calls the Kubernetes API), the pod
security context.
*/}}
{{- define "bulwark.podCommon" -}}
enableServiceLinks: false
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
