import ArgumentParser
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// A service's metrics in Prometheus's text format: the registry the process's swift-metrics
/// records into (the saga kit's `spool_saga_*`, docs/http-api.md), and `GET /metrics` serving it.
public struct ServiceMetrics: Sendable {
    /// Where the metrics are kept.
    public let registry: PrometheusCollectorRegistry

    /// Metrics kept in `registry` (a test binds its factory to a task with `withMetricsFactory`).
    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Bootstraps the process's `MetricsSystem` with a new registry, through swift-prometheus. For
    /// executables, once per process, before anything makes a metric (a participant makes its
    /// handles when it is created): what was made before records nowhere.
    public static func bootstrap() -> ServiceMetrics {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return ServiceMetrics(registry: registry)
    }

    /// Adds `GET /metrics` to `router`: every metric of the registry, text format 0.0.4.
    public func addRoute<Context: RequestContext>(to router: Router<Context>) {
        router.get("metrics") { [registry] _, _ in
            var text: [UInt8] = []
            registry.emit(into: &text)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
    }

    /// A listener serving `GET /metrics` alone on `127.0.0.1:port`, as a ServiceLifecycle service
    /// to run next to the service's own; none when `port` is nil.
    public func listener(port: Int?, logger: Logger) -> [any Service] {
        guard let port else { return [] }
        let router = Router()
        addRoute(to: router)
        logger.info("metrics on http://127.0.0.1:\(port)/metrics")
        return [Application(router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port),
                                                                                    serverName: "spool-sample-metrics"),
                            logger: logger)]
    }
}

/// The option of the services without an HTTP API of their own: where to serve their metrics.
public struct MetricsOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://127.0.0.1:<port>/metrics (default 0: not served).", valueName: "port"))
    var metricsPort = 0

    /// The port to serve metrics on; nil when they are not served.
    public var port: Int? { metricsPort == 0 ? nil : metricsPort }

    /// The default: not served.
    public init() {}

    /// Refuses a port outside 0…65535.
    public func validate() throws {
        guard (0...65535).contains(metricsPort) else { throw ValidationError("--metrics-port must be 0 (off) or 1…65535") }
    }
}
