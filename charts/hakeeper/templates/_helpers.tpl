{{/*
Names, labels and checks shared by the templates. The sidecar's templates are in _sidecar.tpl.
*/}}

{{- define "hakeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every resource name; leaves room for the longest suffix ("-flink-taskmanager"). */}}
{{- define "hakeeper.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hakeeper.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "scope" $ "component" "operator"). */}}
{{- define "hakeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hakeeper.name" .scope }}
app.kubernetes.io/instance: {{ .scope.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component: (dict "scope" $ "component" "operator"). */}}
{{- define "hakeeper.labels" -}}
helm.sh/chart: {{ include "hakeeper.chart" .scope }}
{{ include "hakeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .scope.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .scope.Release.Service }}
app.kubernetes.io/part-of: hakeeper
{{- with .scope.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "hakeeper.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "hakeeper.operator.fullname" -}}
{{- printf "%s-operator" (include "hakeeper.fullname" .) -}}
{{- end -}}

{{- define "hakeeper.operator.serviceAccountName" -}}
{{- .Values.operator.serviceAccount.name | default (include "hakeeper.operator.fullname" .) -}}
{{- end -}}

{{/* The JobManager pods' ServiceAccount (the sidecar's identity). */}}
{{- define "hakeeper.sidecar.serviceAccountName" -}}
{{- .Values.sidecar.serviceAccount.name | default (printf "%s-jobmanager" (include "hakeeper.fullname" .)) -}}
{{- end -}}

{{- define "hakeeper.flink.fullname" -}}
{{- printf "%s-flink" (include "hakeeper.fullname" .) -}}
{{- end -}}

{{/* Flink and hakeeper allow cluster ids of at most 45 characters. */}}
{{- define "hakeeper.flink.clusterId" -}}
{{- .Values.flink.clusterId | default (include "hakeeper.flink.fullname" . | trunc 45 | trimSuffix "-") -}}
{{- end -}}

{{- define "hakeeper.flink.serviceAccountName" -}}
{{- .Values.flink.serviceAccount.name | default (include "hakeeper.flink.fullname" .) -}}
{{- end -}}

{{/* The namespaces the operator watches: operator.watchNamespaces, else the release's. */}}
{{- define "hakeeper.operator.watchNamespaces" -}}
{{- if .Values.operator.watchNamespaces -}}
{{- .Values.operator.watchNamespaces | uniq | join "," -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/*
The S3 credentials from storage.s3.existingSecret as environment variables (the names both
`hakeeper operator` and `hakeeper sidecar` read), or nothing: the pod's cloud identity.
*/}}
{{- define "hakeeper.s3Env" -}}
{{- with .Values.storage.s3 }}
{{- if .existingSecret }}
- name: HAKEEPER_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .accessKeyKey }}
- name: HAKEEPER_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .secretKeyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The S3 flags shared by the operator and the sidecar. */}}
{{- define "hakeeper.s3Args" -}}
{{- with .Values.storage.s3 }}
{{- if .endpoint }}
- {{ printf "--s3-endpoint=%s" .endpoint | quote }}
{{- end }}
{{- if .region }}
- {{ printf "--s3-region=%s" .region | quote }}
{{- end }}
{{- if .pathStyle }}
- "--s3-path-style"
{{- end }}
{{- end }}
{{- end -}}

{{/*
A duration as hakeeper writes it ("500ms", "15s", "1.5m", "1h") in milliseconds, as a string;
values.schema.json has already checked the form.
*/}}
{{- define "hakeeper.durationMs" -}}
{{- $s := toString . | trim -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $s -}}
{{- $unit := trimPrefix $number $s -}}
{{- $perUnit := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 -}}
{{- if not (hasKey $perUnit $unit) -}}
{{- fail (printf "%q is not a duration such as 500ms, 15s, 10m or 1h" $s) -}}
{{- end -}}
{{- mulf (float64 $number) (get $perUnit $unit) -}}
{{- end -}}

{{/*
Leader-election timings, as hakeeper checks them at start (src/lease.rs): lease duration >
renew deadline > 1.2 x retry period > 0. JSON schema cannot compare two values, so this runs
when the chart renders: (dict "timings" .Values.operator.timings "key" "operator.timings").
*/}}
{{- define "hakeeper.validateTimings" -}}
{{- $lease := include "hakeeper.durationMs" .timings.leaseDuration | float64 -}}
{{- $renew := include "hakeeper.durationMs" .timings.renewDeadline | float64 -}}
{{- $retry := include "hakeeper.durationMs" .timings.retryPeriod | float64 -}}
{{- if le $retry 0.0 -}}
{{- fail (printf "%s.retryPeriod (%s) must be greater than zero" .key .timings.retryPeriod) -}}
{{- end -}}
{{- if le $lease $renew -}}
{{- fail (printf "%s: timings in the wrong order: leaseDuration (%s) must be greater than renewDeadline (%s), which must be greater than 1.2 x retryPeriod (%s)" .key .timings.leaseDuration .timings.renewDeadline .timings.retryPeriod) -}}
{{- end -}}
{{- if le $renew (mulf $retry 1.2) -}}
{{- fail (printf "%s: timings in the wrong order: renewDeadline (%s) must be greater than 1.2 x retryPeriod (%s)" .key .timings.renewDeadline .timings.retryPeriod) -}}
{{- end -}}
{{- end -}}

{{/*
Every check JSON schema cannot express; templates/validate.yaml runs it, so a bad value set
fails whatever is rendered.
*/}}
{{- define "hakeeper.validate" -}}
{{- include "hakeeper.validateTimings" (dict "timings" .Values.operator.timings "key" "operator.timings") -}}
{{- include "hakeeper.validateTimings" (dict "timings" .Values.sidecar.timings "key" "sidecar.timings") -}}
{{- include "hakeeper.validateSidecar" (dict "sidecar" .Values.sidecar "key" "sidecar") -}}
{{- if and .Values.operator.watchAllNamespaces .Values.operator.watchNamespaces -}}
{{- fail "operator.watchAllNamespaces and operator.watchNamespaces exclude each other: set one" -}}
{{- end -}}
{{- if and .Values.operator.gc.enabled (not .Values.operator.verify.enabled) -}}
{{- fail "operator.gc.enabled needs operator.verify.enabled: orphans are found by the storage checks" -}}
{{- end -}}
{{- end -}}
