"""schema_lite.py: the part of JSON Schema (2020-12) that conformance/schema/*.schema.json use,
checked without the jsonschema package: type, enum, const, properties, required,
additionalProperties, items, minItems, minProperties, minLength, minimum, pattern, anyOf, oneOf
and local $ref. A keyword outside that set is an error, so a schema cannot silently use one
that this file ignores."""
import re

KNOWN = {'$schema', '$id', '$defs', 'title', 'description', 'type', 'enum', 'const', 'properties',
         'required', 'additionalProperties', 'items', 'minItems', 'minProperties', 'minLength',
         'minimum', 'pattern', 'anyOf', 'oneOf', '$ref'}

TYPES = {
    'object': lambda v: isinstance(v, dict),
    'array': lambda v: isinstance(v, list),
    'string': lambda v: isinstance(v, str),
    'integer': lambda v: isinstance(v, int) and not isinstance(v, bool) or
    (isinstance(v, float) and v.is_integer()),
    'number': lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    'boolean': lambda v: isinstance(v, bool),
    'null': lambda v: v is None,
}


def _resolve(root, ref):
    if not ref.startswith('#/'):
        raise ValueError('only local $ref: %s' % ref)
    node = root
    for part in ref[2:].split('/'):
        node = node[part]
    return node


def errors(schema, value, root=None, path='$'):
    """Every way value breaks schema, as 'path: what' strings (empty: valid)."""
    root = root if root is not None else schema
    out = []
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError('%s: schema keywords not supported: %s' % (path, sorted(unknown)))
    if '$ref' in schema:
        out += errors(_resolve(root, schema['$ref']), value, root, path)
    if 'type' in schema:
        types = schema['type'] if isinstance(schema['type'], list) else [schema['type']]
        if not any(TYPES[t](value) for t in types):
            return out + ['%s: %r is not %s' % (path, value if len(repr(value)) < 60 else type(value).__name__,
                                                 ' or '.join(types))]
    if 'const' in schema and value != schema['const']:
        out.append('%s: %r is not %r' % (path, value, schema['const']))
    if 'enum' in schema and value not in schema['enum']:
        out.append('%s: %r is not one of %s' % (path, value, schema['enum']))
    if isinstance(value, str):
        if len(value) < schema.get('minLength', 0):
            out.append('%s: shorter than %d' % (path, schema['minLength']))
        if 'pattern' in schema and not re.search(schema['pattern'], value):
            out.append('%s: %r does not match %s' % (path, value[:60], schema['pattern']))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 'minimum' in schema \
            and value < schema['minimum']:
        out.append('%s: %r is below %r' % (path, value, schema['minimum']))
    if isinstance(value, dict):
        props = schema.get('properties', {})
        for k in schema.get('required', []):
            if k not in value:
                out.append('%s: %s is missing' % (path, k))
        if len(value) < schema.get('minProperties', 0):
            out.append('%s: fewer than %d members' % (path, schema['minProperties']))
        for k, v in value.items():
            if k in props:
                out += errors(props[k], v, root, '%s.%s' % (path, k))
            elif schema.get('additionalProperties') is False:
                out.append('%s: %s is not allowed' % (path, k))
            elif isinstance(schema.get('additionalProperties'), dict):
                out += errors(schema['additionalProperties'], v, root, '%s.%s' % (path, k))
    if isinstance(value, list):
        if len(value) < schema.get('minItems', 0):
            out.append('%s: fewer than %d items' % (path, schema['minItems']))
        if 'items' in schema:
            for i, v in enumerate(value):
                out += errors(schema['items'], v, root, '%s[%d]' % (path, i))
    if 'anyOf' in schema and not any(not errors(s, value, root, path) for s in schema['anyOf']):
        out.append('%s: matches none of anyOf' % path)
    if 'oneOf' in schema:
        ok = [s for s in schema['oneOf'] if not errors(s, value, root, path)]
        if len(ok) != 1:
            hint = ''
            if isinstance(value, dict) and 'do' in value:
                # name the variant that was meant, and why it does not fit
                for s in schema['oneOf']:
                    if s.get('properties', {}).get('do', {}).get('const') == value['do']:
                        hint = ': ' + '; '.join(errors(s, value, root, path)[:3])
            out.append('%s: matches %d of oneOf, want 1%s' % (path, len(ok), hint))
    return out
