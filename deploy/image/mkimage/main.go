// Command mkimage builds reconcile's container image (make image).
//
//	go run ./deploy/image/mkimage [-tag reconcile:dev]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/reconcile-dev/reconcile/deploy/image"
	"github.com/reconcile-dev/reconcile/internal/engine"
)

func main() {
	tag := flag.String("tag", image.Tag, "the image's tag")
	flag.Parse()
	ctx := context.Background()
	eng, err := engine.Connect(ctx)
	if err == nil {
		err = image.Build(ctx, eng.Client, *tag)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Println("built", *tag)
}
