package retry_test

import "math"

func posInf() float64 { return math.Inf(1) }
func nan() float64    { return math.NaN() }
