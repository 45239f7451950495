package testenv_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/beanstalkd/go-beanstalk"
	_ "github.com/go-sql-driver/mysql"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

func TestMariaDBCreatesAndDropsATable(t *testing.T) {
	db, err := sql.Open("mysql", testenv.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE probe (id BIGINT PRIMARY KEY, email VARCHAR(320) NOT NULL)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO probe VALUES (1, 'ana@example.com'), (2, 'bo@example.com')"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM probe WHERE email LIKE '%@example.com'").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v; want 2", n, err)
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE probe"); err != nil {
		t.Fatalf("drop table: %v", err)
	}
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM probe").Scan(&n)
	if err == nil {
		t.Fatal("the dropped table still answers")
	}
}

func TestBeanstalkdPutReserveDelete(t *testing.T) {
	conn, err := beanstalk.Dial("tcp", testenv.BeanstalkdAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	name := testenv.Tube("probe")
	tube := beanstalk.NewTube(conn, name)
	id, err := tube.Put([]byte("hello"), 1, 0, time.Minute)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	ts := beanstalk.NewTubeSet(conn, name)
	gotID, body, err := ts.Reserve(5 * time.Second)
	if err != nil || gotID != id || string(body) != "hello" {
		t.Fatalf("reserve = %d %q %v; want %d hello", gotID, body, err, id)
	}
	if err := conn.Delete(id); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, _, err := ts.Reserve(100 * time.Millisecond); !isTimeout(err) {
		t.Fatalf("after delete, reserve = %v; want a timeout", err)
	}
}

// A job acknowledged by beanstalkd (INSERTED) survives kill -9 and restart
// because the binlog is on.
func TestBeanstalkdBinlogSurvivesKill9(t *testing.T) {
	testenv.BeanstalkdAddr(t) // the same prerequisites as the shared server
	b, err := testenv.StartBeanstalkd(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	conn, err := beanstalk.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	id, err := beanstalk.NewTube(conn, "durable").Put([]byte("acknowledged"), 1, 0, time.Minute)
	conn.Close()
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	pid := b.PID()
	b.Kill()
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if b.PID() == pid {
		t.Fatal("beanstalkd was not restarted")
	}
	conn, err = beanstalk.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gotID, body, err := beanstalk.NewTubeSet(conn, "durable").Reserve(5 * time.Second)
	if err != nil || gotID != id || string(body) != "acknowledged" {
		t.Fatalf("after kill -9: reserve = %d %q %v; want %d acknowledged", gotID, body, err, id)
	}
}

func TestKubeAPIServerRoundTripsANamespace(t *testing.T) {
	testenv.KubeAssets(t)
	kube, err := testenv.StartKube()
	if err != nil {
		t.Fatal(err)
	}
	defer kube.Stop()
	c, err := client.New(kube.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "round-trip", Labels: map[string]string{"team": "sync"}}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	var got corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: "round-trip"}, &got); err != nil {
		t.Fatalf("get namespace: %v", err)
	}
	if got.Labels["team"] != "sync" || got.UID == "" || got.Status.Phase != corev1.NamespaceActive {
		t.Fatalf("namespace came back as %+v", got.ObjectMeta)
	}
}

func isTimeout(err error) bool {
	var cerr beanstalk.ConnError
	if e, ok := err.(beanstalk.ConnError); ok {
		cerr = e
		return cerr.Err == beanstalk.ErrTimeout
	}
	return false
}
