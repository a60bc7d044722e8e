// Command strata is the single binary of the strata image-based OS stack.
package main

import (
	"os"

	"github.com/strata-os/strata/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
