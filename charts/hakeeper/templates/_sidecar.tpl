{{/*
The hakeeper sidecar, for inclusion in any JobManager pod spec (README.md in this chart shows a
whole Deployment). Every template here takes either

  - a chart scope: the root context `$` inside this chart, or `.Subcharts.hakeeper` in a chart
    that depends on this one; the settings come from its .Values.sidecar; or
  - a dict with that scope as "scope" and overrides of .Values.sidecar, e.g.
    (dict "scope" .Subcharts.hakeeper "clusterId" "analytics" "contend" (list "dispatcher")),
    for several Flink clusters in one namespace.

In the pod spec ($ctx is either of those; the mounts and volumes may be empty, hence `with`):

  serviceAccountName: {{ include "hakeeper.sidecar.serviceAccountName" .Subcharts.hakeeper }}
  initContainers:
    {{- include "hakeeper.sidecar" $ctx | nindent 4 }}
  containers:
    - name: jobmanager
      env: {{- include "hakeeper.jobManagerEnv" $ctx | nindent 8 }}
      readinessProbe: {{- include "hakeeper.leaderReadinessProbe" (merge (dict "component" "dispatcher") $ctx) | nindent 8 }}
      {{- with include "hakeeper.jobManagerVolumeMounts" $ctx }}
      volumeMounts: {{- nindent 8 . }}
      {{- end }}
  {{- with include "hakeeper.sidecarVolumes" $ctx }}
  volumes: {{- nindent 4 . }}
  {{- end }}
*/}}

{{/* The effective sidecar values, as JSON: .Values.sidecar with the dict's overrides. */}}
{{- define "hakeeper.sidecar.values" -}}
{{- if hasKey . "scope" -}}
{{- toJson (mergeOverwrite (deepCopy .scope.Values.sidecar) (omit . "scope" "component")) -}}
{{- else -}}
{{- toJson .Values.sidecar -}}
{{- end -}}
{{- end -}}

{{/* The --listen value of an api block. */}}
{{- define "hakeeper.sidecar.listen" -}}
{{- if eq .mode "unix" -}}
{{- printf "unix:%s" .socketPath -}}
{{- else if eq .mode "pod" -}}
{{- printf "0.0.0.0:%d" (int .port) -}}
{{- else -}}
{{- printf "127.0.0.1:%d" (int .port) -}}
{{- end -}}
{{- end -}}

{{/* Where the token file is mounted, in the sidecar and in the JobManager. */}}
{{- define "hakeeper.sidecar.tokenDir" -}}/etc/hakeeper/api-token{{- end -}}

{{/*
Checks of sidecar values that JSON schema cannot express: (dict "sidecar" <values> "key" <name>).
*/}}
{{- define "hakeeper.validateSidecar" -}}
{{- $sc := .sidecar -}}
{{- if and (eq $sc.api.mode "pod") (eq (int $sc.probePort) (int $sc.api.port)) -}}
{{- fail (printf "%s.probePort (%d) must differ from %s.api.port in mode pod: both listen on the pod's IP" .key (int $sc.probePort) .key) -}}
{{- end -}}
{{- if and (eq $sc.api.mode "pod") (not $sc.api.token.existingSecret) -}}
{{- fail (printf "%s.api.mode pod serves the API on the pod's network: set %s.api.token.existingSecret (hakeeper refuses to listen off loopback without a token)" .key .key) -}}
{{- end -}}
{{- if $sc.contend -}}
{{- if not $sc.address -}}
{{- fail (printf "%s.contend needs %s.address: the address published while leading" .key .key) -}}
{{- end -}}
{{- $liveness := false -}}
{{- range $sc.extraArgs }}{{ if hasPrefix "--liveness" (toString .) }}{{ $liveness = true }}{{ end }}{{ end -}}
{{- if not (or $sc.livenessUrl $liveness) -}}
{{- fail (printf "%s.contend needs %s.livenessUrl (the JobManager's HTTP endpoint, e.g. http://127.0.0.1:8081/config): leadership must end when the JobManager does" .key .key) -}}
{{- end -}}
{{- end -}}
{{- if $sc.clientTimeout -}}
{{- if lt (include "hakeeper.durationMs" $sc.clientTimeout | float64) 100.0 -}}
{{- fail (printf "%s.clientTimeout (%s) must be at least 100ms" .key $sc.clientTimeout) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The sidecar container: one entry of initContainers. */}}
{{- define "hakeeper.sidecar" -}}
{{- $scope := . -}}
{{- if hasKey . "scope" }}{{ $scope = .scope }}{{ end -}}
{{- $sc := include "hakeeper.sidecar.values" . | fromJson -}}
{{- $clusterId := required "sidecar.clusterId (Flink's kubernetes.cluster-id) is required where the hakeeper.sidecar template is rendered" $sc.clusterId -}}
{{- include "hakeeper.validateTimings" (dict "timings" $sc.timings "key" "sidecar.timings") -}}
{{- include "hakeeper.validateSidecar" (dict "sidecar" $sc "key" "sidecar") -}}
- name: hakeeper
  image: {{ include "hakeeper.image" $scope | quote }}
  imagePullPolicy: {{ $scope.Values.image.pullPolicy }}
  # A native sidecar: started (and, in mode pod, ready) before the JobManager, kept running
  # beside it, and stopped after it, so the JobManager never runs without its leadership.
  restartPolicy: Always
  args:
    - sidecar
    - {{ printf "--cluster-id=%s" $clusterId | quote }}
    - {{ printf "--listen=%s" (include "hakeeper.sidecar.listen" $sc.api) | quote }}
    - {{ printf "--probe-listen=0.0.0.0:%d" (int $sc.probePort) | quote }}
    {{- if $sc.api.token.existingSecret }}
    - {{ printf "--token-file=%s/token" (include "hakeeper.sidecar.tokenDir" .) | quote }}
    {{- end }}
    {{- if $sc.contend }}
    - {{ printf "--contend=%s" (join "," $sc.contend) | quote }}
    - {{ printf "--address=%s" $sc.address | quote }}
    {{- if $sc.livenessUrl }}
    - {{ printf "--liveness-url=%s" $sc.livenessUrl | quote }}
    {{- end }}
    - {{ printf "--liveness-failures=%d" (int $sc.livenessFailures) | quote }}
    - {{ printf "--liveness-timeout=%s" $sc.livenessTimeout | quote }}
    {{- end }}
    {{- if $sc.clientTimeout }}
    - {{ printf "--client-timeout=%s" $sc.clientTimeout | quote }}
    {{- end }}
    - {{ printf "--lease-duration=%s" $sc.timings.leaseDuration | quote }}
    - {{ printf "--renew-deadline=%s" $sc.timings.renewDeadline | quote }}
    - {{ printf "--retry-period=%s" $sc.timings.retryPeriod | quote }}
    {{- if $sc.storageDir }}
    - {{ printf "--storage-dir=%s" $sc.storageDir | quote }}
    {{- with include "hakeeper.s3Args" $scope | trim }}{{ nindent 4 . }}{{ end }}
    {{- end }}
    - {{ printf "--checkpoints-retained=%d" (int $sc.checkpointsRetained) | quote }}
    {{- if $sc.strictRecovery }}
    - "--strict-recovery"
    {{- end }}
    {{- if $sc.ownerReference }}
    - {{ printf "--owner-reference=%s" $sc.ownerReference | quote }}
    {{- end }}
    {{- range $sc.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    # For $(POD_IP) in sidecar.address.
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    - name: HAKEEPER_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: HAKEEPER_LOG
      value: {{ $sc.log.level | quote }}
    - name: HAKEEPER_LOG_FORMAT
      value: {{ $sc.log.format | quote }}
    {{- if $sc.storageDir }}
    {{- with include "hakeeper.s3Env" $scope | trim }}{{ nindent 4 . }}{{ end }}
    {{- end }}
    {{- with $sc.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    # /livez, /readyz and /metrics alone, without the token (--probe-listen), whatever
    # sidecar.api.mode is: for kubelet probes and Prometheus.
    - name: hakeeper-probes
      containerPort: {{ int $sc.probePort }}
      protocol: TCP
    {{- if eq $sc.api.mode "pod" }}
    - name: hakeeper-api
      containerPort: {{ int $sc.api.port }}
      protocol: TCP
    {{- end }}
  # /readyz: every lock watch has synced. The JobManager starts once this passes.
  startupProbe:
    httpGet:
      path: /readyz
      port: hakeeper-probes
    periodSeconds: 1
    failureThreshold: 60
  readinessProbe:
    httpGet:
      path: /readyz
      port: hakeeper-probes
    periodSeconds: 5
  livenessProbe:
    httpGet:
      path: /livez
      port: hakeeper-probes
    periodSeconds: 10
    failureThreshold: 3
  resources:
    {{- toYaml $sc.resources | nindent 4 }}
  securityContext:
    {{- toYaml $scope.Values.containerSecurityContext | nindent 4 }}
  {{- with include "hakeeper.sidecar.volumeMounts" . | trim }}
  volumeMounts:
    {{- nindent 4 . }}
  {{- end }}
{{- end -}}

{{- define "hakeeper.sidecar.volumeMounts" -}}
{{- include "hakeeper.sidecar.volumeMounts.body" . | trim -}}
{{- end -}}

{{- define "hakeeper.sidecar.volumeMounts.body" -}}
{{- $sc := include "hakeeper.sidecar.values" . | fromJson -}}
{{- if eq $sc.api.mode "unix" }}
- name: hakeeper-run
  mountPath: {{ dir $sc.api.socketPath }}
{{- end }}
{{- if $sc.api.token.existingSecret }}
- name: hakeeper-api-token
  mountPath: {{ include "hakeeper.sidecar.tokenDir" . }}
  readOnly: true
{{- end }}
{{- if $sc.projectServiceAccountToken }}
# Where the Kubernetes client looks for the in-cluster token, CA and namespace.
- name: hakeeper-kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end }}
{{- end -}}

{{/* The volumes the sidecar (and the JobManager's mounts) need: entries of the pod's volumes. */}}
{{- define "hakeeper.sidecarVolumes" -}}
{{- include "hakeeper.sidecarVolumes.body" . | trim -}}
{{- end -}}

{{- define "hakeeper.sidecarVolumes.body" -}}
{{- $sc := include "hakeeper.sidecar.values" . | fromJson -}}
{{- if eq $sc.api.mode "unix" }}
# The socket's directory, shared by the sidecar and the JobManager.
- name: hakeeper-run
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- if $sc.api.token.existingSecret }}
- name: hakeeper-api-token
  secret:
    secretName: {{ $sc.api.token.existingSecret }}
    items:
      - key: {{ $sc.api.token.key }}
        path: token
    # 0440: readable by the pod's fsGroup.
    defaultMode: 288
{{- end }}
{{- if $sc.projectServiceAccountToken }}
# What automounting would give every container, given to the sidecar alone.
- name: hakeeper-kube-api-access
  projected:
    # 0444, as automounted tokens.
    defaultMode: 292
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                apiVersion: v1
                fieldPath: metadata.namespace
{{- end }}
{{- end -}}

{{/* The JobManager container's mounts for reaching the API: the socket's directory, the token. */}}
{{- define "hakeeper.jobManagerVolumeMounts" -}}
{{- include "hakeeper.jobManagerVolumeMounts.body" . | trim -}}
{{- end -}}

{{- define "hakeeper.jobManagerVolumeMounts.body" -}}
{{- $sc := include "hakeeper.sidecar.values" . | fromJson -}}
{{- if eq $sc.api.mode "unix" }}
- name: hakeeper-run
  mountPath: {{ dir $sc.api.socketPath }}
{{- end }}
{{- if $sc.api.token.existingSecret }}
- name: hakeeper-api-token
  mountPath: {{ include "hakeeper.sidecar.tokenDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The JobManager container's environment: where the API is, and the token file. */}}
{{- define "hakeeper.jobManagerEnv" -}}
{{- include "hakeeper.jobManagerEnv.body" . | trim -}}
{{- end -}}

{{- define "hakeeper.jobManagerEnv.body" -}}
{{- $sc := include "hakeeper.sidecar.values" . | fromJson -}}
- name: HAKEEPER_API
  {{- if eq $sc.api.mode "unix" }}
  value: {{ printf "unix:%s" $sc.api.socketPath | quote }}
  {{- else }}
  value: {{ printf "http://127.0.0.1:%d" (int $sc.api.port) | quote }}
  {{- end }}
{{- if $sc.api.token.existingSecret }}
- name: HAKEEPER_API_TOKEN_FILE
  value: {{ printf "%s/token" (include "hakeeper.sidecar.tokenDir" .) | quote }}
{{- end }}
{{- end -}}

{{/*
A readiness probe for the JobManager container that passes only while this pod's sidecar leads
"component" (GET /readyz?leader=<component>), so that a Service routes to the leader alone:
(merge (dict "component" "dispatcher") $ctx). An httpGet probe on the sidecar's probe port
(sidecar.probePort), in every sidecar.api.mode.

Only the leader is ever ready, so a rolling update can never make a new pod ready while the old
leader lives: give such Deployments `strategy: {type: Recreate}`.
*/}}
{{- define "hakeeper.leaderReadinessProbe" -}}
{{- include "hakeeper.leaderReadinessProbe.body" . | trim -}}
{{- end -}}

{{- define "hakeeper.leaderReadinessProbe.body" -}}
{{- $sc := include "hakeeper.sidecar.values" . | fromJson -}}
{{- $component := required "hakeeper.leaderReadinessProbe needs a component, e.g. (dict \"scope\" $ \"component\" \"dispatcher\")" .component -}}
httpGet:
  path: {{ printf "/readyz?leader=%s" $component | quote }}
  port: {{ int $sc.probePort }}
periodSeconds: 2
failureThreshold: 1
successThreshold: 1
{{- end -}}
