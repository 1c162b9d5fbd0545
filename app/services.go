package app

import (
	"context"
	"fmt"

	"github.com/duplex/duplex/app/features"
)

// runningService is a feature's service that started, and so must stop.
type runningService struct {
	feature string
	service features.Service
}

// runningServices are the started services, in start order. Only the
// goroutine that runs New, Shutdown or Close touches it.
type runningServices []runningService

// startServices starts every feature's services in order. If one fails,
// those already started stop again (newest first) and the error names the
// feature, so the server does not start half a product.
func (a *App) startServices(ctx context.Context) error {
	for _, f := range a.features {
		for _, svc := range f.Services {
			if err := svc.Start(ctx, a.hub); err != nil {
				stopCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
				a.stopServices(stopCtx)
				cancel()
				return fmt.Errorf("feature %s: start %T: %w", f.Name, svc, err)
			}
			a.services = append(a.services, runningService{f.Name, svc})
		}
	}
	return nil
}

// stopServices stops the started services, newest first, each within ctx;
// a service that fails to stop is logged and the rest still stop. A second
// call does nothing.
func (a *App) stopServices(ctx context.Context) {
	for i := len(a.services) - 1; i >= 0; i-- {
		s := a.services[i]
		if err := s.service.Stop(ctx); err != nil {
			a.log.Warn("feature service did not stop cleanly", "feature", s.feature, "service", fmt.Sprintf("%T", s.service), "err", err)
		}
	}
	a.services = nil
}
