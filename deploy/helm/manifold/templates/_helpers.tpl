{{/* The chart's name, and the release's full name (a Kubernetes name). */}}
{{- define "manifold.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "manifold.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "manifold.selectorLabels" -}}
app.kubernetes.io/name: {{ include "manifold.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "manifold.labels" -}}
{{ include "manifold.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "manifold.claimName" -}}
{{- default (printf "%s-indexes" (include "manifold.fullname" .)) .Values.storage.filesystem.existingClaim -}}
{{- end -}}

{{/*
manifold.config is config.yaml: .Values.config with what the chart owns
set from the other values (listen, dataDir, tls, upstreams, store,
cache.content, redis, auth.htpasswd), each path one the Deployment mounts.
Secrets are never in it: passwords are files or environment variables.
*/}}
{{- define "manifold.config" -}}
{{- $v := .Values -}}
{{- if not $v.upstreams -}}
{{- fail "upstreams: at least one upstream (the embedded registry is not for a fleet)" -}}
{{- end -}}
{{- $c := deepCopy (default (dict) $v.config) -}}
{{- $_ := set $c "listen" (printf ":%d" (int $v.containerPort)) -}}
{{- $_ = set $c "dataDir" "/tmp/manifold-data" -}}
{{- if $v.tls.enabled -}}
{{- $_ = set $c "tls" (merge (dict "certificate" "/var/run/secrets/manifold-tls/tls.crt" "key" "/var/run/secrets/manifold-tls/tls.key") (default (dict) $c.tls)) -}}
{{- end -}}
{{- $ups := list -}}
{{- range $i, $u := $v.upstreams -}}
{{- $e := omit $u "passwordSecret" -}}
{{- if $u.passwordSecret -}}
{{- $_ = set $e "passwordFile" (printf "/var/run/secrets/manifold/upstream-%d/password" $i) -}}
{{- end -}}
{{- $ups = append $ups $e -}}
{{- end -}}
{{- $_ = set $c "upstreams" $ups -}}
{{- $cache := default (dict) $c.cache -}}
{{- $content := dict "maxBytes" $v.contentCache.maxBytes -}}
{{- $store := dict -}}
{{- if eq $v.storage.backend "s3" -}}
{{- $_ = set $content "driver" "s3" -}}
{{- $_ = set $content "parameters" (merge (dict "rootdirectory" $v.storage.s3.contentRoot) (deepCopy $v.storage.s3.parameters)) -}}
{{- $_ = set $store "driver" "s3" -}}
{{- $_ = set $store "parameters" (merge (dict "rootdirectory" $v.storage.s3.indexRoot) (deepCopy $v.storage.s3.parameters)) -}}
{{- else if eq $v.storage.backend "filesystem" -}}
{{- $_ = set $content "driver" "filesystem" -}}
{{- $_ = set $content "parameters" (dict "rootdirectory" "/var/cache/manifold") -}}
{{- $_ = set $store "driver" "filesystem" -}}
{{- $_ = set $store "parameters" (dict "rootdirectory" "/var/lib/manifold") -}}
{{- else -}}
{{- fail (printf "storage.backend: %q: want filesystem or s3" $v.storage.backend) -}}
{{- end -}}
{{- $_ = set $cache "content" (merge $content (default (dict) $cache.content)) -}}
{{- $_ = set $c "cache" $cache -}}
{{- $_ = set $c "store" (merge $store (default (dict) $c.store)) -}}
{{- if $v.redis.addrs -}}
{{- $r := dict "addrs" $v.redis.addrs -}}
{{- if $v.redis.tls -}}{{- $_ = set $r "tls" true -}}{{- end -}}
{{- if $v.redis.keyPrefix -}}{{- $_ = set $r "keyPrefix" $v.redis.keyPrefix -}}{{- end -}}
{{- $_ = set $c "redis" (merge $r (default (dict) $c.redis)) -}}
{{- end -}}
{{- if $v.auth.htpasswd.existingSecret -}}
{{- $_ = set $c "auth" (merge (dict "htpasswd" "/etc/manifold/auth/htpasswd") (default (dict) $c.auth)) -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}
