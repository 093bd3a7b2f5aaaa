// Package telemetry sends the gateway's traces and metrics to an
// OpenTelemetry endpoint over OTLP/HTTP, as the telemetry: section of the
// configuration says (docs/telemetry.md).
//
// Traces: a server span per request and a client span per attempt, the
// W3C trace context (traceparent, tracestate) continued from the client and
// sent to the upstream on each attempt; the policies' retries and
// rejections, the fallback served and the Spillway reason are span events
// and attributes. A request whose traceparent says sampled is traced; any
// other is with the probability telemetry.traces.sample_ratio
// (ParentBased(TraceIDRatioBased)).
//
// Metrics: those of the gateway's Prometheus registry, bridged into
// OpenTelemetry (go.opentelemetry.io/contrib/bridges/prometheus) and
// exported periodically, so that the names /metrics serves are the names
// the OTLP backend receives.
//
// The gateway knows only its gateway.Tracer interface; internal/server
// makes a Provider when the configuration has telemetry: and hands it to
// gateway.New as Options.Tracer. The OpenTelemetry SDK is compiled into
// this package alone.
package telemetry

import (
	"context"
	"errors"
	"fmt"

	prombridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/spillwayotel"
)

// instrumentation is the name of the tracer: the instrumentation scope of
// every span the gateway makes.
const instrumentation = "github.com/spillway-dev/spillway/gateway"

// Provider exports the gateway's traces and metrics. It implements
// gateway.Tracer. Shutdown flushes and stops the exports.
type Provider struct {
	tp     *sdktrace.TracerProvider
	mp     *metric.MeterProvider // nil: metrics are not exported (interval 0)
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	// events turns the policies' events into span events, the names and
	// attributes spillwayotel gives them in a program (its metrics go to
	// a no-op meter: the gateway's metrics are the registry's).
	events *spillwayotel.Observer
}

// New returns a Provider exporting to cfg's endpoint; reg is the registry
// whose metrics are exported (nil: none). Nothing is sent before the first
// sampled request ends or the first metrics interval passes.
func New(cfg *config.Telemetry, reg prometheus.Gatherer) (*Provider, error) {
	if cfg.OTLP.Protocol != config.OTLPHTTPProtobuf {
		return nil, fmt.Errorf("telemetry: protocol %q is not supported (%s only)", cfg.OTLP.Protocol, config.OTLPHTTPProtobuf)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(cfg.ServiceName))
	// New connects to nothing: the context is not kept.
	ctx := context.Background()
	texp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.OTLP.Endpoint+"/v1/traces"),
		otlptracehttp.WithHeaders(cfg.OTLP.Headers), otlptracehttp.WithTimeout(cfg.OTLP.Timeout))
	if err != nil {
		return nil, fmt.Errorf("telemetry: traces: %w", err)
	}
	events, err := spillwayotel.New(noop.NewMeterProvider())
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	p := &Provider{
		tp: sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp), sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Traces.SampleRatio)))),
		prop:   propagation.TraceContext{},
		events: events,
	}
	p.tracer = p.tp.Tracer(instrumentation)
	if reg != nil && cfg.Metrics.Interval > 0 {
		mexp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(cfg.OTLP.Endpoint+"/v1/metrics"),
			otlpmetrichttp.WithHeaders(cfg.OTLP.Headers), otlpmetrichttp.WithTimeout(cfg.OTLP.Timeout))
		if err != nil {
			_ = p.tp.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: metrics: %w", err)
		}
		reader := metric.NewPeriodicReader(mexp, metric.WithInterval(cfg.Metrics.Interval),
			metric.WithProducer(prombridge.NewMetricProducer(prombridge.WithGatherer(reg))))
		p.mp = metric.NewMeterProvider(metric.WithReader(reader), metric.WithResource(res))
	}
	return p, nil
}

// ForceFlush exports the spans ended and the metrics now, without waiting
// for the batch or the interval.
func (p *Provider) ForceFlush(ctx context.Context) error {
	err := p.tp.ForceFlush(ctx)
	if p.mp != nil {
		err = errors.Join(err, p.mp.ForceFlush(ctx))
	}
	return err
}

// Shutdown exports what is pending and stops the exporters; ctx bounds the
// wait for an endpoint that does not answer.
func (p *Provider) Shutdown(ctx context.Context) error {
	err := p.tp.Shutdown(ctx)
	if p.mp != nil {
		err = errors.Join(err, p.mp.Shutdown(ctx))
	}
	return errors.Join(err, p.events.Close())
}
