package features

// Default is the product: every feature the server runs, in the order
// their routes are registered. Adding a feature is one line here.
func Default() []*Feature {
	return []*Feature{
		Echo(),
		Chat(),
		Live(),
		Push(),
		Ticker(),
		Scores(),
	}
}
