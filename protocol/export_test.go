package protocol

// The two roads of decodeV, for the tests of package protocol_test.
var (
	DecodeVRoads   = decodeV
	DecodeLongRoad = decodeLongRoad
	ExactMembers   = exactMembers
)
