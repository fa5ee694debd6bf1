// Package mem is an in-process msgtrans transport ("mem://name") over
// synchronous pipes, for unit tests and examples that need no sockets, and
// the smallest complete example of a custom transport. Importing the package
// registers the scheme.
package mem
