package s3catalog

import (
	"log/slog"
	"time"
)

// Defaults and limits of the options.
const (
	DefaultFileURLExpiry   = 5 * time.Minute
	MaxURLExpiry           = 15 * time.Minute // longest presigned URL New accepts
	ResultURLExpiry        = 15 * time.Minute // expiry of ResultUploadURL's URLs
	DefaultCacheTTL        = 30 * time.Second
	DefaultLoadTimeout     = 5 * time.Second
	DefaultResultEdgeKiB   = 8
	DefaultResultMaxBytes  = 256 << 20
	DefaultPublishParallel = 8
)

// Option configures a Catalog (New) or a publish (Publish). Options that do not apply to
// one of them are ignored by it.
type Option func(*options)

type options struct {
	base           *slog.Logger // as given, for catalog.Local which adds its own component
	logger         *slog.Logger
	meter          Meter
	fileURLExpiry  time.Duration
	cacheTTL       time.Duration
	loadTimeout    time.Duration
	resultEdge     int
	resultMaxBytes int64
	parallel       int
	now            func() time.Time
}

func buildOptions(opts []Option) options {
	o := options{
		logger:         slog.New(slog.DiscardHandler),
		meter:          nopMeter{},
		fileURLExpiry:  DefaultFileURLExpiry,
		cacheTTL:       DefaultCacheTTL,
		loadTimeout:    DefaultLoadTimeout,
		resultEdge:     DefaultResultEdgeKiB << 10,
		resultMaxBytes: DefaultResultMaxBytes,
		parallel:       DefaultPublishParallel,
		now:            time.Now,
	}
	for _, fn := range opts {
		if fn != nil {
			fn(&o)
		}
	}
	o.base = o.logger
	o.logger = o.logger.With("component", "s3catalog")
	return o
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithMeter counts every S3 request the Catalog or Publish sends, retries included (default:
// none). See Meter.
func WithMeter(m Meter) Option {
	return func(o *options) {
		if m != nil {
			o.meter = m
		}
	}
}

// WithFileURLExpiry sets how long FileURI's presigned URLs stay valid (default 5 minutes).
// New refuses a duration that is not positive or exceeds MaxURLExpiry.
func WithFileURLExpiry(d time.Duration) Option {
	return func(o *options) { o.fileURLExpiry = d }
}

// WithCacheTTL sets how long the Catalog keeps the environments index, environment indexes
// and task indexes it has read (default 30 s); 0 disables the cache. New refuses a negative
// duration.
func WithCacheTTL(d time.Duration) Option {
	return func(o *options) { o.cacheTTL = d }
}

// WithLoadTimeout bounds the S3 read Environments makes when its cache is stale (default
// 5 s); Environments has no context of its own. New refuses a duration that is not positive.
func WithLoadTimeout(d time.Duration) Option {
	return func(o *options) { o.loadTimeout = d }
}

// WithResultEdgeKiB sets how many KiB ReadResult keeps of the start and of the end of a
// result (default 8). New refuses a negative value.
func WithResultEdgeKiB(n int) Option {
	return func(o *options) { o.resultEdge = n << 10 }
}

// WithResultMaxBytes sets the largest result ReadResult reads (default 256 MiB); a larger
// object is ErrResultTooLarge. New refuses a value that is not positive.
func WithResultMaxBytes(n int64) Option {
	return func(o *options) { o.resultMaxBytes = n }
}

// WithParallelism sets how many uploads Publish runs at once (default 8). Publish refuses a
// value that is not positive.
func WithParallelism(n int) Option {
	return func(o *options) { o.parallel = n }
}

// WithClock sets the clock the Catalog's cache uses (default time.Now). Presigned URLs are
// always signed with the real time.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}
