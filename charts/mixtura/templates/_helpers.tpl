{{/* The chart's name, or nameOverride; 63 characters is the limit of a DNS label. */}}
{{- define "mixtura.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release-qualified name of every object; the release name alone when it already holds the chart's name. */}}
{{- define "mixtura.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mixtura.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mixtura.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mixtura.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mixtura.labels" -}}
helm.sh/chart: {{ include "mixtura.chart" . }}
{{ include "mixtura.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mixtura
{{- end }}

{{- define "mixtura.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mixtura.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mixtura.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "mixtura.jobsImage" -}}
{{- .Values.jobsImage | default (printf "ghcr.io/mixtura/jobs:%s" .Chart.AppVersion) }}
{{- end }}
