package queue

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestKeyValueBucket: KeyValue makes a bucket <prefix>_<name> in memory,
// one value per key, with the TTL and bound asked for, and hands it back
// again (same bucket) on a second call; a bad name is refused.
func TestKeyValueBucket(t *testing.T) {
	q := openEmbedded(t, nil)
	kv, err := q.KeyValue(t.Context(), "ratelimit", time.Minute, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Bucket() != "t_ratelimit" || st.TTL() != time.Minute || st.History() != 1 || st.BackingStore() != "JetStream" {
		t.Fatalf("bucket %q ttl %v history %d", st.Bucket(), st.TTL(), st.History())
	}
	info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if info.Config.Storage != jetstream.MemoryStorage || info.Config.MaxBytes != 1<<20 {
		t.Fatalf("storage %v max bytes %d", info.Config.Storage, info.Config.MaxBytes)
	}
	again, err := q.KeyValue(t.Context(), "ratelimit", time.Minute, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := again.Get(t.Context(), "k"); err != nil || string(e.Value()) != "v1" {
		t.Fatalf("second handle: %v %v", e, err)
	}
	if _, err := q.KeyValue(t.Context(), "bad.name", 0, 0); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("bad name: %v", err)
	}
}
