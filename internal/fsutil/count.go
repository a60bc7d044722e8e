package fsutil

import "io"

// CountWriter passes writes through to W and counts the bytes W took, for
// writers of files and archives that report their size.
type CountWriter struct {
	W io.Writer
	N int64
}

func (c *CountWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}
