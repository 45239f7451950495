{{/* Chart name, overridable. */}}
{{- define "kommo-unisender.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every resource: <release>-<chart>, or the release name
alone when it already contains the chart name. Kept to 40 characters so the
longest suffix (-kommointegration-editor) still fits a 63-character name.
*/}}
{{- define "kommo-unisender.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kommo-unisender.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "kommo-unisender.labels" -}}
helm.sh/chart: {{ include "kommo-unisender.chart" . }}
{{ include "kommo-unisender.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kommo-unisender
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the release's pods (add app.kubernetes.io/component). */}}
{{- define "kommo-unisender.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kommo-unisender.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: call with (dict "ctx" $ "component" "worker"). */}}
{{- define "kommo-unisender.componentLabels" -}}
{{ include "kommo-unisender.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kommo-unisender.componentSelector" -}}
{{ include "kommo-unisender.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The operator image: repository@digest, or repository:tag (default appVersion). */}}
{{- define "kommo-unisender.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "kommo-unisender.managerServiceAccountName" -}}
{{- if .Values.serviceAccount.manager.create }}
{{- default (printf "%s-manager" (include "kommo-unisender.fullname" .)) .Values.serviceAccount.manager.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.manager.name }}
{{- end }}
{{- end }}

{{- define "kommo-unisender.workerServiceAccountName" -}}
{{- if .Values.serviceAccount.worker.create }}
{{- default (printf "%s-worker" (include "kommo-unisender.fullname" .)) .Values.serviceAccount.worker.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.worker.name }}
{{- end }}
{{- end }}

{{/* Where Kommo reaches the webhook server. */}}
{{- define "kommo-unisender.publicBaseURL" -}}
{{- if .Values.publicBaseURL }}
{{- .Values.publicBaseURL | trimSuffix "/" }}
{{- else if .Values.ingress.enabled }}
{{- printf "https://%s" .Values.ingress.host }}
{{- end }}
{{- end }}

{{- define "kommo-unisender.mysqlName" -}}
{{- printf "%s-mysql" (include "kommo-unisender.fullname" .) }}
{{- end }}

{{- define "kommo-unisender.mysqlAuthSecret" -}}
{{- default (include "kommo-unisender.mysqlName" .) .Values.mysql.bundled.auth.existingSecret }}
{{- end }}

{{- define "kommo-unisender.beanstalkdName" -}}
{{- printf "%s-beanstalkd" (include "kommo-unisender.fullname" .) }}
{{- end }}

{{/*
MYSQL_DSN for the operator's containers. Bundled: composed by the kubelet
from the password in the Secret ($(VAR) expansion), so the DSN holds no
password in the pod spec; external: read whole from the user's Secret.
*/}}
{{- define "kommo-unisender.mysqlEnv" -}}
{{- if eq .Values.mysql.mode "bundled" }}
- name: MYSQL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "kommo-unisender.mysqlAuthSecret" . }}
      key: mariadb-password
- name: MYSQL_DSN
  value: {{ printf "%s:$(MYSQL_PASSWORD)@tcp(%s:3306)/%s" .Values.mysql.bundled.username (include "kommo-unisender.mysqlName" .) .Values.mysql.bundled.database | quote }}
{{- else }}
- name: MYSQL_DSN
  valueFrom:
    secretKeyRef:
      name: {{ required "mysql.external.existingSecret is required when mysql.mode is external" .Values.mysql.external.existingSecret }}
      key: {{ .Values.mysql.external.key }}
{{- end }}
{{- end }}

{{/* BEANSTALKD_ADDR for the webhook server and the workers. */}}
{{- define "kommo-unisender.beanstalkdEnv" -}}
{{- if eq .Values.beanstalkd.mode "bundled" }}
- name: BEANSTALKD_ADDR
  value: {{ printf "%s:11300" (include "kommo-unisender.beanstalkdName" .) | quote }}
{{- else if .Values.beanstalkd.external.existingSecret }}
- name: BEANSTALKD_ADDR
  valueFrom:
    secretKeyRef:
      name: {{ .Values.beanstalkd.external.existingSecret }}
      key: {{ .Values.beanstalkd.external.key }}
{{- else }}
- name: BEANSTALKD_ADDR
  value: {{ required "beanstalkd.external.address or beanstalkd.external.existingSecret is required when beanstalkd.mode is external" .Values.beanstalkd.external.address | quote }}
{{- end }}
{{- end }}

{{/* The /tmp emptyDir every operator container mounts (read-only root). */}}
{{- define "kommo-unisender.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "kommo-unisender.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* Scheduling fields shared by the pod templates: call with a values block. */}}
{{- define "kommo-unisender.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}
