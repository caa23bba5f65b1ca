// LoadGen drives the Engine (in process) or a Server (over HTTP) with simulated buyers and
// proves afterwards that nothing was oversold. Its parts arrive with the LoadGen issue.
public enum LoadGen {}
