{{/*
The services: component name (as in deploy/rbac and the images) -> values key, Python
module and NATS user (deploy/nats/authorization.conf).
*/}}
{{- define "llmsafespace.components" -}}
watcher: {values: watcher, module: lss_watcher, user: watcher}
sandbox-reconciler: {values: sandboxReconciler, module: lss_sandbox_reconciler, user: sandbox-reconciler}
pool-manager: {values: poolManager, module: lss_pool_manager, user: pool-manager}
{{- end -}}

{{- define "llmsafespace.labels" -}}
app.kubernetes.io/name: llmsafespace
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: llmsafespace
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "llmsafespace.selectorLabels" -}}
app.kubernetes.io/name: llmsafespace
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "llmsafespace.image" -}}
{{ printf "%s/%s:%s" .root.Values.image.repository .component (.root.Values.image.tag | default .root.Chart.AppVersion) }}
{{- end -}}

{{/* Settings the chart derives from its own values; env maps may not set them. */}}
{{- define "llmsafespace.reservedEnv" -}}
- LSS_SERVICE_NAME
- LSS_HTTP__HOST
- LSS_HTTP__PORT
- LSS_KUBE__KUBECONFIG
- LSS_NATS__URL
- LSS_NATS__USER
- LSS_NATS__PASSWORD
- LSS_NATS__TOKEN
- LSS_NATS__CREDENTIALS_FILE
- LSS_NATS__INBOX_PREFIX
- LSS_NATS__DECLARE_TOPOLOGY
- LSS_NATS__TLS_CA_FILE
- LSS_NATS__TLS_CERT_FILE
- LSS_NATS__TLS_KEY_FILE
- LSS_SANDBOX__NAMESPACE_ISOLATION
{{- end -}}

{{/*
The user's settings for one component: the common env, then the component's (which wins).
Fails, naming the value, on a key the chart sets itself.
*/}}
{{- define "llmsafespace.userEnv" -}}
{{- $reserved := include "llmsafespace.reservedEnv" . | fromYamlArray -}}
{{- $own := (index .root.Values .values).env | default dict -}}
{{- range $key := keys .root.Values.env | sortAlpha }}
{{- if has $key $reserved }}
{{- fail (printf "env.%s: the chart sets it from its own values (nats.*, sandboxReconciler.namespaceIsolation); remove it" $key) }}
{{- end }}
{{- end }}
{{- range $key := keys $own | sortAlpha }}
{{- if has $key $reserved }}
{{- fail (printf "%s.env.%s: the chart sets it from its own values (nats.*, sandboxReconciler.namespaceIsolation); remove it" $.values $key) }}
{{- end }}
{{- end }}
{{- $merged := merge (deepCopy $own) .root.Values.env }}
{{- range $key := keys $merged | sortAlpha }}
- name: {{ $key }}
  value: {{ index $merged $key | quote }}
{{- end }}
{{- end -}}

{{/* How the connection of NATS user .user authenticates, and its TLS files. */}}
{{- define "llmsafespace.natsEnv" -}}
{{- $nats := .root.Values.nats -}}
{{- $mode := $nats.auth.mode -}}
- name: LSS_NATS__URL
  value: {{ $nats.url | quote }}
{{- if ne $mode "none" }}
{{- $secret := required "nats.auth.existingSecret: name the Secret with the services' NATS credentials (or set nats.auth.mode: none)" $nats.auth.existingSecret }}
{{- if eq $mode "password" }}
- name: LSS_NATS__USER
  value: {{ .user | quote }}
- name: LSS_NATS__PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: {{ printf "%s-password" .user | quote }}}
{{- else if eq $mode "credentials" }}
- name: LSS_NATS__CREDENTIALS_FILE
  value: {{ printf "/etc/llmsafespace/nats/%s.creds" .user | quote }}
{{- else if eq $mode "token" }}
- name: LSS_NATS__TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret | quote }}, key: token}
{{- end }}
{{- if or (eq $mode "password") (eq $mode "credentials") }}
- name: LSS_NATS__INBOX_PREFIX
  value: {{ printf "_INBOX.%s" .user | quote }}
{{- end }}
{{- end }}
{{- if $nats.tls.existingSecret }}
- name: LSS_NATS__TLS_CA_FILE
  value: /etc/llmsafespace/nats-tls/ca.crt
{{- if $nats.tls.mutual }}
- name: LSS_NATS__TLS_CERT_FILE
  value: /etc/llmsafespace/nats-tls/tls.crt
- name: LSS_NATS__TLS_KEY_FILE
  value: /etc/llmsafespace/nats-tls/tls.key
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes with the NATS files of user .user: its own .creds only, and the TLS files. */}}
{{- define "llmsafespace.natsVolumes" -}}
{{- $nats := .root.Values.nats -}}
{{- if eq $nats.auth.mode "credentials" }}
- name: nats-credentials
  secret:
    secretName: {{ $nats.auth.existingSecret | quote }}
    defaultMode: 0440
    items:
      - {key: {{ printf "%s.creds" .user | quote }}, path: {{ printf "%s.creds" .user | quote }}}
{{- end }}
{{- if $nats.tls.existingSecret }}
- name: nats-tls
  secret:
    secretName: {{ $nats.tls.existingSecret | quote }}
    defaultMode: 0440
    items:
      - {key: ca.crt, path: ca.crt}
{{- if $nats.tls.mutual }}
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
{{- end }}
{{- end }}
{{- end -}}

{{- define "llmsafespace.natsVolumeMounts" -}}
{{- $nats := .root.Values.nats -}}
{{- if eq $nats.auth.mode "credentials" }}
- {name: nats-credentials, mountPath: /etc/llmsafespace/nats, readOnly: true}
{{- end }}
{{- if $nats.tls.existingSecret }}
- {name: nats-tls, mountPath: /etc/llmsafespace/nats-tls, readOnly: true}
{{- end }}
{{- end -}}

{{/* Pod Security "restricted", for every pod of the chart. */}}
{{- define "llmsafespace.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "llmsafespace.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Scheduling values shared by every pod of the chart. */}}
{{- define "llmsafespace.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
