"""One rich document per kind (most fields set, snake_case and camelCase mixed), for round trips."""

SAMPLES = {
    "RouteRule": """
apiVersion: config.istio.io/v1alpha2
kind: RouteRule
metadata:
  name: reviews-rich
  namespace: prod
  labels: {team: books}
  annotations: {note: "x.y/z"}
spec:
  destination: {name: reviews, namespace: prod, domain: svc.cluster.local}
  precedence: 3
  match:
    source: {name: productpage, labels: {version: v1}}
    request:
      headers:
        Cookie: {regex: "^(.*?;)?(user=jason)(;.*)?$"}
        uri: {prefix: /api/}
        x-mode: fast
  route:
  - labels: {version: v1}
    weight: 75
  - destination: {name: reviews-canary}
    labels: {version: v2}
    weight: 25
  rewrite: {uri: /v2/, authority: reviews.internal}
  http_req_timeout: {simple_timeout: {timeout: 1.5s, override_header_name: x-timeout}}
  httpReqRetries: {simpleRetry: {attempts: 3, perTryTimeout: 500ms}}
  httpFault:
    delay: {percent: 12.5, fixedDelay: 7.000s}
    abort: {percent: 10, httpStatus: 503}
  mirror: {name: reviews, labels: {version: v3}}
  corsPolicy:
    allowOrigin: ["*"]
    allowMethods: [GET, POST]
    allowHeaders: [x-a]
    exposeHeaders: [x-b]
    maxAge: 1h
    allowCredentials: true
  appendHeaders: {X-Added: "1", x-other: two}
  websocketUpgrade: true
""",
    "DestinationPolicy": """
apiVersion: config.istio.io/v1beta1
kind: DestinationPolicy
metadata: {name: reviews-cb}
spec:
  source: {name: productpage}
  destination: {name: reviews, labels: {version: v1}}
  loadBalancing: {name: LEAST_CONN}
  circuitBreaker:
    simpleCb:
      maxConnections: 100
      httpMaxPendingRequests: 1
      httpMaxRequests: 1000
      sleepWindow: 15m
      httpConsecutiveErrors: 7
      httpDetectionInterval: 5m
      httpMaxRequestsPerConnection: 10
      httpMaxEjectionPercent: 100
      httpMaxRetries: 2
""",
    "EgressRule": """
apiVersion: config.istio.io/v1alpha2
kind: EgressRule
metadata: {name: foo-egress}
spec:
  destination:
    service: *.foo.com
  ports:
  - {port: 80, protocol: http}
  - {port: 443, protocol: https}
  use_egress_proxy: true
""",
    "Ingress": """
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: gateway
  annotations: {kubernetes.io/ingress.class: istio}
spec:
  backend: {serviceName: productpage, servicePort: 9080}
  tls:
  - {hosts: [foo.bar.com], secretName: istio-ingress-certs}
  rules:
  - host: foo.bar.com
    http:
      paths:
      - {path: /productpage, backend: {serviceName: productpage, servicePort: 9080}}
      - {path: /api/v1/products/.*, backend: {serviceName: productpage, servicePort: http}}
""",
    "rule": """
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: promhttp, namespace: istio-system}
spec:
  match: destination.service == "service1.ns.svc.cluster.local" && request.headers["x-user"] == "user1"
  actions:
  - handler: handler.prometheus
    instances: [requestduration.metric.istio-system, requestcount.metric]
    name: first
""",
    "metric": """
kind: metric
metadata: {name: requestduration, namespace: istio-system}
spec:
  value: response.duration | "0ms"
  dimensions:
    destination_service: destination.service | "unknown"
    response_code: response.code | 200
  monitored_resource_type: '"UNSPECIFIED"'
  monitoredResourceDimensions: {project_id: '"p"'}
""",
    "logentry": """
kind: logentry
metadata: {name: newlog, namespace: istio-system}
spec:
  severity: '"warning"'
  timestamp: request.time
  variables:
    source: source.labels["app"] | "unknown"
    responseCode: response.code | 0
  monitored_resource_type: '"UNSPECIFIED"'
""",
    "listentry": """
kind: listentry
metadata: {name: appversion}
spec:
  value: source.labels["version"]
""",
    "quota": """
kind: quota
metadata: {name: requestcount, namespace: istio-system}
spec:
  dimensions:
    source: source.labels["app"] | source.service | "unknown"
    destinationVersion: destination.labels["version"] | "unknown"
""",
    "checknothing": """
kind: checknothing
metadata: {name: denyreviewsv3request}
spec:
""",
    "reportnothing": """
kind: reportnothing
metadata: {name: nothing}
spec: {}
""",
    "kubernetes": """
kind: kubernetes
metadata: {name: attributes, namespace: istio-system}
spec:
  source_uid: source.uid | ""
  destination_ip: destination.ip | ip("0.0.0.0")
  attribute_bindings: {source.ip: sourcePodIp, source.labels: sourceLabels}
""",
    "denier": """
kind: denier
metadata: {name: denyreviewsv3handler}
spec:
  status: {code: 7, message: Not allowed}
  validDuration: 10s
  valid_use_count: 5
""",
    "listchecker": """
kind: listchecker
metadata: {name: whitelist}
spec:
  providerUrl: http://white_list_registry/
  refreshInterval: 2m
  ttl: 10m
  cachingInterval: 1s
  cachingUseCount: 3
  overrides: ["v1", "v2"]
  entry_type: case_insensitive_strings
  blacklist: true
""",
    "memquota": """
kind: memquota
metadata: {name: handler, namespace: istio-system}
spec:
  quotas:
  - name: requestcount.quota.istio-system
    maxAmount: 5000
    validDuration: 1s
    overrides:
    - dimensions: {destination: ratings, source: reviews, sourceVersion: v2}
      maxAmount: 1
      validDuration: 1s
  minDeduplicationDuration: 2s
""",
    "prometheus": """
kind: prometheus
metadata: {name: handler, namespace: istio-system}
spec:
  metrics:
  - name: request_count
    instance_name: requestcount.metric.istio-system
    kind: COUNTER
    label_names: [destination_service, response_code]
  - name: request_duration
    namespace: mesh
    description: how long
    instance_name: requestduration.metric.istio-system
    kind: DISTRIBUTION
    label_names: [destination_service]
    buckets: {explicit_buckets: {bounds: [0.005, 0.01, 1, 10]}}
  - instanceName: requestsize.metric.istio-system
    kind: distribution
    buckets: {exponentialBuckets: {numFiniteBuckets: 8, scale: 1, growthFactor: 10}}
  - instanceName: gauge.metric.istio-system
    kind: GAUGE
""",
    "stdio": """
kind: stdio
metadata: {name: newhandler, namespace: istio-system}
spec:
  severity_levels: {warning: 1, Fatal: ERROR}
  outputAsJson: false
  log_stream: STDERR
  outputLevel: 1
""",
    "fluentd": """
kind: fluentd
metadata: {name: handler, namespace: istio-system}
spec: {address: "fluentd-es.logging:24224", integer_duration: true}
""",
    "kubernetesenv": """
kind: kubernetesenv
metadata: {name: handler, namespace: istio-system}
spec: {cache_refresh_duration: 5m, pod_label_for_app: app}
""",
    "noop": """
kind: noop
metadata: {name: nothing}
""",
    "attributemanifest": """
kind: attributemanifest
metadata: {name: istioproxy, namespace: istio-system}
spec:
  revision: "1"
  name: istio-proxy
  attributes:
    source.ip: {valueType: IP_ADDRESS, description: Did you know that descriptions are optional?}
    request.time: {value_type: TIMESTAMP}
    connection.sent.bytes_total: {valueType: INT64}
""",
    "QuotaSpec": """
apiVersion: config.istio.io/v1alpha2
kind: QuotaSpec
metadata: {name: request-count, namespace: istio-system}
spec:
  rules:
  - match:
    - clause:
        request.headers[x-user]: {exact: jason}
        destination.service: ratings.default.svc.cluster.local
    quotas:
    - {charge: 2, quota: requestcount}
    - {quota: other}
""",
    "QuotaSpecBinding": """
apiVersion: config.istio.io/v1alpha2
kind: QuotaSpecBinding
metadata: {name: requestcount, namespace: istio-system}
spec:
  quotaSpecs: [{name: requestcount, namespace: istio-system}]
  services: [{name: ratings, namespace: default}, {service: '*'}]
""",
    "MeshConfig": """
apiVersion: config.istio.io/v1alpha2
kind: MeshConfig
metadata: {name: mesh, namespace: istio-system}
spec:
  authPolicy: MUTUAL_TLS
  mtls_excluded_services: [kubernetes.default.svc.cluster.local, db.legacy.svc.cluster.local]
  mixerAddress: 127.0.0.1:9091
  rdsRefreshDelay: 1s
  defaultConfig:
    connectTimeout: 1s
    drainDuration: 2s
    parentShutdownDuration: 3s
    discoveryRefreshDelay: 1s
    zipkinAddress: 127.0.0.1:9411
    configPath: /etc/istio/proxy
""",
}
