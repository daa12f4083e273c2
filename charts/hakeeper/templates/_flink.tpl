{{/*
The parts the example Flink JobManager and TaskManager pods share: (dict "scope" $ "role"
"jobmanager").
*/}}

{{/* The environment of a Flink container. */}}
{{- define "hakeeper.flink.env" -}}
{{- $f := .scope.Values.flink -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- if $f.s3Plugin }}
# The entrypoint links this plugin from /opt/flink/opt into the writable /opt/flink/plugins.
- name: ENABLE_BUILT_IN_PLUGINS
  value: {{ $f.s3Plugin | quote }}
{{- end }}
# The container runs as a user the image's /etc/passwd does not know: Hadoop (the S3 plugin)
# would fail to look up its name, and the JVM its home.
- name: HADOOP_USER_NAME
  value: flink
- name: HOME
  value: /tmp
{{- with .scope.Values.storage.s3 }}
{{- if .existingSecret }}
# Read by the S3 plugin's credential chain.
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .accessKeyKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .secretKeyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The mounts of a Flink container; the root file system is read-only. */}}
{{- define "hakeeper.flink.volumeMounts" -}}
# Read-only: the image's entrypoint logs that it cannot edit flink-conf.yaml, which is
# harmless, since the ConfigMap already holds what it would write (ports, slots) and the
# JobManager's address comes from its args.
- name: flink-config
  mountPath: /opt/flink/conf
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: log
  mountPath: /opt/flink/log
{{- if .scope.Values.flink.s3Plugin }}
- name: plugins
  mountPath: /opt/flink/plugins
{{- end }}
{{- end -}}

{{- define "hakeeper.flink.volumes" -}}
- name: flink-config
  configMap:
    name: {{ include "hakeeper.flink.fullname" .scope }}-config
    items:
      - key: flink-conf.yaml
        path: flink-conf.yaml
      - key: log4j-console.properties
        path: log4j-console.properties
- name: tmp
  emptyDir: {}
- name: log
  emptyDir: {}
{{- if .scope.Values.flink.s3Plugin }}
- name: plugins
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* The pod spec fields the JobManagers and TaskManagers share. */}}
{{- define "hakeeper.flink.podSpec" -}}
serviceAccountName: {{ include "hakeeper.flink.serviceAccountName" .scope }}
# Flink's Kubernetes HA services call the API server.
automountServiceAccountToken: true
enableServiceLinks: false
{{- with .scope.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .scope.Values.podSecurityContext | nindent 2 }}
affinity:
  # Spread the pods of one role over nodes where possible.
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "hakeeper.selectorLabels" (dict "scope" .scope "component" (printf "flink-%s" .role)) | nindent 14 }}
{{- end -}}
