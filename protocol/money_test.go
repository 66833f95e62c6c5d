package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMoneyJSON(t *testing.T) {
	tests := []struct {
		cents Money
		want  string
	}{
		{0, "0"}, {5, "0.05"}, {50, "0.5"}, {100, "1"}, {1250, "12.5"}, {1255, "12.55"},
		{-120, "-1.2"}, {-5, "-0.05"}, {123456789, "1234567.89"},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.cents)
		if err != nil || string(b) != tt.want {
			t.Errorf("Money(%d) = %s, %v; want %s", int64(tt.cents), b, err, tt.want)
		}
		var f float64
		if err := json.Unmarshal(b, &f); err != nil || int64(f*100+sign(f)*0.5) != int64(tt.cents) {
			t.Errorf("Money(%d) does not read back as a JSON number: %s", int64(tt.cents), b)
		}
	}
}

func TestMoneyDollars(t *testing.T) {
	for cents, want := range map[Money]string{0: "$0.00", 5: "$0.05", 1150: "$11.50", -5: "-$0.05", -123456: "-$1234.56"} {
		if got := cents.Dollars(); got != want {
			t.Errorf("Money(%d).Dollars() = %q, want %q", int64(cents), got, want)
		}
	}
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

func TestMoneyUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    Money
		wantErr string
	}{
		{`12.5`, 1250, ""}, {`0.29`, 29, ""}, {`5`, 500, ""}, {`-1.05`, -105, ""}, {`1e2`, 10000, ""},
		{`0.001`, 0, "v.price: want an amount with at most two decimals"},
		// Numbers sent as text: a plain decimal only.
		{`"5"`, 500, ""}, {`"20.50"`, 2050, ""}, {`"-1.05"`, -105, ""}, {`"007.5"`, 750, ""},
		{`"20.505"`, 0, `v.price: want an amount with at most two decimals, got string "20.505"`},
		{`"1e3"`, 0, `v.price: want an amount with at most two decimals, got string "1e3"`},
		{`"17abc"`, 0, `got string "17abc"`},
		{`" 17"`, 0, `got string " 17"`},
		{`""`, 0, `got string ""`},
		{`"0x10"`, 0, `got string "0x10"`},
		{`"NaN"`, 0, `got string "NaN"`},
		{`"Infinity"`, 0, `got string "Infinity"`},
		{`"+5"`, 0, `got string "+5"`},
		{`"5."`, 0, `got string "5."`},
		{`"99999999999999999999"`, 0, `got string "99999999999999999999"`},
		{`1e30`, 0, "v.price"},
		{`true`, 0, "v.price"},
	}
	for _, tt := range tests {
		var v struct {
			Price Money `json:"price"`
		}
		err := DecodeV(json.RawMessage(`{"price":`+tt.in+`}`), &v)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || v.Price != tt.want {
			t.Errorf("%s: got %d, %v; want %d", tt.in, v.Price, err, tt.want)
		}
	}
}
