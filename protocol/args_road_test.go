package protocol

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

type roadInner struct {
	Qty int64 `json:"qty"`
}

type roadPIDs []int64

func (p *roadPIDs) UnmarshalJSON(b []byte) error {
	var one int64
	if json.Unmarshal(b, &one) == nil {
		*p = roadPIDs{one}
		return nil
	}
	var many []int64
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*p = many
	return nil
}

type roadArgs struct {
	PID    int64       `json:"pid"`
	Price  *Money      `json:"price"`
	Name   string      `json:"name"`
	Inner  roadInner   `json:"inner"`
	Lines  []roadInner `json:"lines"`
	PIDs   roadPIDs    `json:"pids"`
	Ticket *int64      `json:"ticket"`
}

// TestDecodeVOnePassAgreesWithTheLongRoad: for every kind of v, decodeV
// (which tries one plain pass first) ends with the same value and the same
// error as the long road alone (after the exact-names check when strict),
// strict or not.
func TestDecodeVOnePassAgreesWithTheLongRoad(t *testing.T) {
	for _, v := range []string{
		`{"pid":12,"price":"3.50","name":"x"}`,
		`{"pid":"12"}`,
		`{"PID":12}`,
		`{"pid":12,"extra":1}`,
		`{"inner":{"qty":2,"extra":1}}`,
		`{"inner":{"qty":"2"}}`,
		`{"lines":[{"qty":1},{"qty":"2"}]}`,
		`{"pids":3}`, `{"pids":[3,4]}`, `{"pids":"3"}`,
		`{"pid":1,"pid":2}`, `{"pid":1,"pid":"2"}`, `{"pid":"1","pid":2}`,
		`{"pid":"twelve"}`, `{"pid":1.5}`, `{"ticket":null}`, `{"name":5}`,
		`null`, `[]`, `"x"`, `{`, `{"pid":12} trailing`,
	} {
		for _, strict := range []string{"", "fd1.test"} {
			t.Run(fmt.Sprintf("%s/%q", v, strict), func(t *testing.T) {
				var got, want roadArgs
				gotErr := decodeV(json.RawMessage(v), &got, strict)
				var wantErr error
				if strict != "" {
					wantErr = exactMembers(json.RawMessage(v), reflect.TypeOf(&want), strict)
				}
				if wantErr == nil {
					wantErr = decodeLongRoad(json.RawMessage(v), &want)
				}
				if wantErr == nil {
					wantErr = Validate("v", &want)
				}
				if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
					t.Fatalf("error %v, the long road says %v", gotErr, wantErr)
				}
				if wantErr == nil && !reflect.DeepEqual(got, want) {
					t.Fatalf("decoded %+v, the long road %+v", got, want)
				}
			})
		}
	}
}
