package worker

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kommo-unisender/kommo-unisender/internal/queue"
)

// queueStatsTimeout bounds the beanstalkd commands of one scrape.
const queueStatsTimeout = 3 * time.Second

// QueueCollector exposes the depth and age of the worker's tube, read from
// beanstalkd at scrape time over a connection of its own (the worker's
// connection blocks in reserve).
type QueueCollector struct {
	tube     string
	stats    *queue.Consumer
	jobs     *prometheus.Desc
	age      *prometheus.Desc
	scrapeOK *prometheus.Desc
}

// NewQueueCollector returns the collector of tube on the beanstalkd at addr.
func NewQueueCollector(addr, tube string) (*QueueCollector, error) {
	if tube == "" {
		tube = DefaultTube
	}
	c, err := queue.NewConsumer(addr, []string{tube}, queue.ConsumerOptions{})
	if err != nil {
		return nil, err
	}
	return &QueueCollector{
		tube:  tube,
		stats: c,
		jobs: prometheus.NewDesc("kommo_unisender_queue_jobs",
			"Jobs in the worker's beanstalkd tube by state: ready, reserved, delayed (parked or backing off), buried (dead letters).",
			[]string{"tube", "state"}, nil),
		age: prometheus.NewDesc("kommo_unisender_queue_oldest_ready_age_seconds",
			"Age of the next ready job of the tube (the oldest one: jobs share a priority); 0 when none is ready.",
			[]string{"tube"}, nil),
		scrapeOK: prometheus.NewDesc("kommo_unisender_queue_up",
			"1 when beanstalkd answered the last scrape's stats commands.", []string{"tube"}, nil),
	}, nil
}

// Describe implements prometheus.Collector.
func (q *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.jobs
	ch <- q.age
	ch <- q.scrapeOK
}

// Collect implements prometheus.Collector.
func (q *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueStatsTimeout)
	defer cancel()
	s, err := q.stats.StatsTube(ctx, q.tube)
	var age time.Duration
	if err == nil {
		age, _, err = q.stats.NextReadyAge(ctx, q.tube)
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(q.scrapeOK, prometheus.GaugeValue, 0, q.tube)
		return
	}
	ch <- prometheus.MustNewConstMetric(q.scrapeOK, prometheus.GaugeValue, 1, q.tube)
	for state, n := range map[string]int{"ready": s.Ready, "reserved": s.Reserved, "delayed": s.Delayed, "buried": s.Buried} {
		ch <- prometheus.MustNewConstMetric(q.jobs, prometheus.GaugeValue, float64(n), q.tube, state)
	}
	ch <- prometheus.MustNewConstMetric(q.age, prometheus.GaugeValue, age.Seconds(), q.tube)
}

// Close closes the collector's connection.
func (q *QueueCollector) Close() error { return q.stats.Close() }
