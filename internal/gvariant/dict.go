package gvariant

// Lookup returns the value of the first entry of an a{sv} dictionary whose
// key is key.
func Lookup(dict []DictEntry, key string) (Variant, bool) {
	for _, e := range dict {
		if k, ok := e.Key.(string); ok && k == key {
			if v, ok := e.Value.(Variant); ok {
				return v, true
			}
		}
	}
	return Variant{}, false
}

// NewVariant wraps a value with the type parsed from sig; sig must be a
// valid signature known at compile time.
func NewVariant(sig string, v any) Variant {
	return Variant{Type: MustType(sig), Value: v}
}
