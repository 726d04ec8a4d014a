// Package hostile writes compose files built to exhaust a loader: alias and
// merge-key bombs and huge projects. The loader's tests and its benchmark
// use the same inputs.
package hostile

import (
	"fmt"
	"strings"
)

// Laughs is a "billion laughs": levels of anchors, each a list of nine
// aliases of the one before, the last used by service web of image.
func Laughs(levels int, image string) string {
	var b strings.Builder
	b.WriteString(`x-l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x-l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d,", i-1), 9), ","))
	}
	fmt.Fprintf(&b, "services:\n  web:\n    image: %s\n    x-bomb: *l%d\n", image, levels)
	return b.String()
}

// MergeBomb nests merge keys: each mapping merges the one before and lists
// it four times.
func MergeBomb(levels int, image string) string {
	var b strings.Builder
	b.WriteString("x-m0: &m0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1}\n")
	for i := 1; i <= levels; i++ {
		p := fmt.Sprintf("*m%d", i-1)
		fmt.Fprintf(&b, "x-m%d: &m%d\n  <<: [%s]\n  l%d: [%s, %s, %s, %s]\n", i, i, p, i, p, p, p, p)
	}
	fmt.Fprintf(&b, "services:\n  web:\n    image: %s\n    x-bomb: *m%d\n", image, levels)
	return b.String()
}

// Services lists n services of image, named prefix0 to prefix(n-1), without
// the "services:" line so that it can follow other services.
func Services(n int, prefix, image string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  %s%d:\n    image: %s\n", prefix, i, image)
	}
	return b.String()
}

// Expanded is the largest document of aliases the limits accept: about
// 45,000 nodes once expanded, from under 1 KB.
func Expanded(image string) string {
	var b strings.Builder
	b.WriteString(`x-l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "x-l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d,", i-1), 9), ","))
	}
	fmt.Fprintf(&b, "services:\n  web:\n    image: %s\n    x-big: [*l3, *l3, *l3, *l3, *l3]\n", image)
	return b.String()
}
