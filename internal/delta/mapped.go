package delta

import "syscall"

// mapMin is the size from which the files a patch is computed from are
// read into anonymous memory mapped for them instead of Go memory.
const mapMin = 1 << 20

// mapBytes returns n bytes for a file being diffed and the function that
// frees them. From mapMin bytes they are an anonymous mapping (Go memory if
// the mapping fails): a kernel update's largest modules (amdgpu.ko, 19 MB,
// old and new) would otherwise count in the heap whose growth paces the
// garbage collector, which lets the heap grow to twice its live size
// before a collection; mapped, they go back to the system as soon as the
// patch is made.
func mapBytes(n int) ([]byte, func()) {
	if n >= mapMin {
		mem, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
		if err == nil {
			return mem, func() {
				if err := syscall.Munmap(mem); err != nil {
					panic("delta: unmapping a file's payload: " + err.Error())
				}
			}
		}
	}
	return make([]byte, n), func() {}
}
