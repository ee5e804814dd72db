package power

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// checkSchemaMeta walks the flatbuffer of a Schema message before Arrow
// decodes it. Arrow allocates slices of the lengths the buffer claims (fields,
// children, custom metadata) without comparing them to the buffer's size, and
// follows offsets without bounds checks; a flatbuffer may also alias tables,
// so a small buffer can describe an exponentially large field tree. This
// checks every vector Arrow sizes an allocation from against the bytes really
// there, and bounds the number and depth of fields.
func checkSchemaMeta(b []byte) error {
	c := fbCheck{b: b}
	msg, err := c.root()
	if err != nil {
		return err
	}
	if err := c.tableVector(msg, 4, nil); err != nil { // Message.custom_metadata
		return err
	}
	schema, ok, err := c.table(msg, 2) // Message.header
	if err != nil || !ok {
		return err
	}
	if err := c.tableVector(schema, 2, nil); err != nil { // Schema.custom_metadata
		return err
	}
	return c.tableVector(schema, 1, func(f int) error { return c.field(f, 1) }) // Schema.fields
}

// Sample streams have about a dozen flat columns.
const (
	maxSchemaFields = 4096
	maxFieldDepth   = 32
)

type fbCheck struct {
	b      []byte
	fields int
}

var errFB = errors.New("malformed schema flatbuffer")

func (c *fbCheck) u32(p int) (int, error) {
	if p < 0 || p+4 > len(c.b) {
		return 0, errFB
	}
	return int(binary.LittleEndian.Uint32(c.b[p:])), nil
}

func (c *fbCheck) root() (int, error) {
	u, err := c.u32(0)
	if err != nil {
		return 0, err
	}
	return u, c.checkTable(u)
}

func (c *fbCheck) checkTable(t int) error {
	so, err := c.u32(t)
	if err != nil {
		return err
	}
	vt := t - int(int32(so))
	if vt < 0 || vt+4 > len(c.b) {
		return errFB
	}
	return nil
}

// slot returns the absolute position of field i of table t, or 0 if absent.
func (c *fbCheck) slot(t, i int) (int, error) {
	so, _ := c.u32(t)
	vt := t - int(int32(so))
	vsize := int(binary.LittleEndian.Uint16(c.b[vt:]))
	vo := 4 + 2*i
	if vo+2 > vsize {
		return 0, nil
	}
	if vt+vo+2 > len(c.b) {
		return 0, errFB
	}
	off := int(binary.LittleEndian.Uint16(c.b[vt+vo:]))
	if off == 0 {
		return 0, nil
	}
	if t+off+4 > len(c.b) {
		return 0, errFB
	}
	return t + off, nil
}

// table follows field i of t to a sub-table.
func (c *fbCheck) table(t, i int) (int, bool, error) {
	p, err := c.slot(t, i)
	if err != nil || p == 0 {
		return 0, false, err
	}
	u, err := c.u32(p)
	if err != nil {
		return 0, false, err
	}
	return p + u, true, c.checkTable(p + u)
}

// tableVector checks the vector of tables in field i of t and visits each.
func (c *fbCheck) tableVector(t, i int, visit func(int) error) error {
	p, err := c.slot(t, i)
	if err != nil || p == 0 {
		return err
	}
	u, err := c.u32(p)
	if err != nil {
		return err
	}
	v := p + u
	n, err := c.u32(v)
	if err != nil {
		return err
	}
	if n > (len(c.b)-v-4)/4 {
		return fmt.Errorf("%w: a vector of %d entries in %d bytes", errFB, n, len(c.b))
	}
	for k := 0; k < n; k++ {
		e := v + 4 + 4*k
		u, _ := c.u32(e)
		if err := c.checkTable(e + u); err != nil {
			return err
		}
		if visit != nil {
			if err := visit(e + u); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *fbCheck) field(f, depth int) error {
	if c.fields++; c.fields > maxSchemaFields {
		return fmt.Errorf("%w: more than %d fields", errFB, maxSchemaFields)
	}
	if depth > maxFieldDepth {
		return fmt.Errorf("%w: fields nested deeper than %d", errFB, maxFieldDepth)
	}
	if err := c.tableVector(f, 6, nil); err != nil { // Field.custom_metadata
		return err
	}
	return c.tableVector(f, 5, func(ch int) error { return c.field(ch, depth+1) }) // Field.children
}
