/**
 * The fields of the Gateway API kinds k8s/ uses (Gateway, HTTPRoute, GRPCRoute, all
 * gateway.networking.k8s.io/v1), written from the Gateway API v1 specification, standard
 * channel as of v1.1 (the first release with GRPCRoute in v1). @kubernetes/client-node does
 * not know these CRDs, so they are checked against this list instead, just as strictly: a
 * field that is not here is an error. Fields that are experimental in v1.1, or that reached
 * the standard channel only later (HTTPRoute timeouts, a parentRef's port, Gateway
 * infrastructure, session persistence, retries, CORS, ...), are left out on purpose: a cluster
 * with the v1.1 standard CRDs would reject or drop them.
 */

export type FieldType =
  | { t: "string"; enum?: readonly string[]; pattern?: RegExp; minLength?: number; maxLength?: number }
  | { t: "integer"; min?: number; max?: number }
  | { t: "object"; fields: Record<string, Field> }
  | { t: "array"; items: FieldType; maxItems: number; minItems?: number }
  | { t: "map"; values: FieldType; maxProperties?: number }
  /** Checked against @kubernetes/client-node's model of that name (e.g. V1ObjectMeta). */
  | { t: "model"; name: string };

export interface Field {
  type: FieldType;
  required?: boolean;
}

const req = (type: FieldType): Field => ({ type, required: true });
const opt = (type: FieldType): Field => ({ type });
const str = (extra: Omit<Extract<FieldType, { t: "string" }>, "t"> = {}): FieldType => ({ t: "string", ...extra });
const int = (min?: number, max?: number): FieldType => ({ t: "integer", min, max });
const obj = (fields: Record<string, Field>): FieldType => ({ t: "object", fields });
const arr = (items: FieldType, maxItems: number, minItems?: number): FieldType => ({ t: "array", items, maxItems, minItems });

const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const hostname = str({ minLength: 1, maxLength: 253, pattern: /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/ });
const objectName = str({ minLength: 1, maxLength: 253 });
const sectionName = str({ minLength: 1, maxLength: 253, pattern: dnsSubdomain });
const namespace = str({ minLength: 1, maxLength: 63, pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/ });
const group = str({ maxLength: 253, pattern: /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/ });
const kind = str({ minLength: 1, maxLength: 63, pattern: /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/ });
const portNumber = int(1, 65535);
const headerName = str({ minLength: 1, maxLength: 256, pattern: /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/ });

const parentReference = obj({
  group: opt(group),
  kind: opt(kind),
  namespace: opt(namespace),
  name: req(objectName),
  sectionName: opt(sectionName),
});

const backendObjectReference = {
  group: opt(group),
  kind: opt(kind),
  name: req(objectName),
  namespace: opt(namespace),
  port: opt(portNumber),
};

const headerModifier = obj({
  set: opt(arr(obj({ name: req(headerName), value: req(str({ minLength: 1, maxLength: 4096 })) }), 16)),
  add: opt(arr(obj({ name: req(headerName), value: req(str({ minLength: 1, maxLength: 4096 })) }), 16)),
  remove: opt(arr(str({ minLength: 1, maxLength: 256 }), 16)),
});

const localObjectReference = obj({ group: req(group), kind: req(kind), name: req(objectName) });
const requestMirror = obj({ backendRef: req(obj(backendObjectReference)) });
const headerMatch = obj({
  type: opt(str({ enum: ["Exact", "RegularExpression"] })),
  name: req(headerName),
  value: req(str({ minLength: 1, maxLength: 4096 })),
});

const httpPathModifier = obj({
  type: req(str({ enum: ["ReplaceFullPath", "ReplacePrefixMatch"] })),
  replaceFullPath: opt(str({ maxLength: 1024 })),
  replacePrefixMatch: opt(str({ maxLength: 1024 })),
});

const httpRouteFilter = obj({
  type: req(str({ enum: ["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect", "URLRewrite", "ExtensionRef"] })),
  requestHeaderModifier: opt(headerModifier),
  responseHeaderModifier: opt(headerModifier),
  requestMirror: opt(requestMirror),
  requestRedirect: opt(
    obj({
      scheme: opt(str({ enum: ["http", "https"] })),
      hostname: opt(hostname),
      path: opt(httpPathModifier),
      port: opt(portNumber),
      statusCode: opt(int(301, 302)),
    }),
  ),
  urlRewrite: opt(obj({ hostname: opt(hostname), path: opt(httpPathModifier) })),
  extensionRef: opt(localObjectReference),
});

const grpcRouteFilter = obj({
  type: req(str({ enum: ["ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef"] })),
  requestHeaderModifier: opt(headerModifier),
  responseHeaderModifier: opt(headerModifier),
  requestMirror: opt(requestMirror),
  extensionRef: opt(localObjectReference),
});

const backendRef = (filter: FieldType) =>
  obj({ ...backendObjectReference, weight: opt(int(0, 1_000_000)), filters: opt(arr(filter, 16)) });

const routeCommon = {
  parentRefs: opt(arr(parentReference, 32)),
  hostnames: opt(arr(hostname, 16)),
};

const metadata: Field = req({ t: "model", name: "V1ObjectMeta" });
const typeMeta = { apiVersion: req(str()), kind: req(str()), metadata };

export const gatewayApiKinds: Record<string, FieldType> = {
  "gateway.networking.k8s.io/v1/Gateway": obj({
    ...typeMeta,
    spec: req(
      obj({
        gatewayClassName: req(objectName),
        listeners: req(
          arr(
            obj({
              name: req(sectionName),
              hostname: opt(hostname),
              port: req(portNumber),
              protocol: req(str({ minLength: 1, maxLength: 255, pattern: /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$/ })),
              tls: opt(
                obj({
                  mode: opt(str({ enum: ["Terminate", "Passthrough"] })),
                  certificateRefs: opt(arr(obj({ group: opt(group), kind: opt(kind), name: req(objectName), namespace: opt(namespace) }), 64)),
                  options: opt({ t: "map", values: str({ maxLength: 4096 }), maxProperties: 16 }),
                }),
              ),
              allowedRoutes: opt(
                obj({
                  namespaces: opt(
                    obj({
                      from: opt(str({ enum: ["All", "Selector", "Same"] })),
                      selector: opt({ t: "model", name: "V1LabelSelector" }),
                    }),
                  ),
                  kinds: opt(arr(obj({ group: opt(group), kind: req(kind) }), 8)),
                }),
              ),
            }),
            64,
            1,
          ),
        ),
        addresses: opt(arr(obj({ type: opt(str({ minLength: 1, maxLength: 253 })), value: req(str({ minLength: 1, maxLength: 253 })) }), 16)),
      }),
    ),
  }),

  "gateway.networking.k8s.io/v1/HTTPRoute": obj({
    ...typeMeta,
    spec: req(
      obj({
        ...routeCommon,
        rules: opt(
          arr(
            obj({
              matches: opt(
                arr(
                  obj({
                    path: opt(obj({ type: opt(str({ enum: ["Exact", "PathPrefix", "RegularExpression"] })), value: opt(str({ maxLength: 1024 })) })),
                    headers: opt(arr(headerMatch, 16)),
                    queryParams: opt(
                      arr(
                        obj({
                          type: opt(str({ enum: ["Exact", "RegularExpression"] })),
                          name: req(str({ minLength: 1, maxLength: 256 })),
                          value: req(str({ minLength: 1, maxLength: 1024 })),
                        }),
                        16,
                      ),
                    ),
                    method: opt(str({ enum: ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] })),
                  }),
                  64,
                ),
              ),
              filters: opt(arr(httpRouteFilter, 16)),
              backendRefs: opt(arr(backendRef(httpRouteFilter), 16)),
            }),
            16,
          ),
        ),
      }),
    ),
  }),

  "gateway.networking.k8s.io/v1/GRPCRoute": obj({
    ...typeMeta,
    spec: req(
      obj({
        ...routeCommon,
        rules: opt(
          arr(
            obj({
              matches: opt(
                arr(
                  obj({
                    method: opt(
                      obj({
                        type: opt(str({ enum: ["Exact", "RegularExpression"] })),
                        service: opt(str({ maxLength: 1024 })),
                        method: opt(str({ maxLength: 1024 })),
                      }),
                    ),
                    headers: opt(arr(headerMatch, 16)),
                  }),
                  8,
                ),
              ),
              filters: opt(arr(grpcRouteFilter, 16)),
              backendRefs: opt(arr(backendRef(grpcRouteFilter), 16)),
            }),
            16,
          ),
        ),
      }),
    ),
  }),
};
