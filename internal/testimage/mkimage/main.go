// Command mkimage builds the testapp image for the demo and the benchmarks:
//
//	go run ./internal/testimage/mkimage [-tag reconcile-testapp:demo]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/testimage"
)

func main() {
	tag := flag.String("tag", testimage.Tag, "image tag to build")
	flag.Parse()
	ctx := context.Background()
	eng, err := engine.Connect(ctx)
	if err == nil {
		err = eng.Ping(ctx)
	}
	if err == nil {
		err = testimage.Ensure(ctx, eng.Client, *tag)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Println("image ready:", *tag)
}
