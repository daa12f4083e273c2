#!/usr/bin/env bash
# Start a real Kubernetes control plane on loopback for the integration suite: etcd,
# kube-apiserver (RBAC on, static bearer tokens) and kube-controller-manager (the garbage
# collector and the namespace controller), from the binaries tests/realk8s/build.sh made.
#
#   tests/realk8s/start.sh DIR    # writes DIR/{admin,sidecar,reader}.kubeconfig, DIR/pids
#   tests/realk8s/stop.sh DIR
#
# Three identities: `admin` (system:masters), `hakeeper-sidecar`, which has only the
# ClusterRole `hakeeper-sidecar` below (what the sidecar uses on ConfigMaps and Events), and
# `hakeeper-reader`, which may only get and list ConfigMaps (too little for a sidecar).
set -euo pipefail

dir="$(realpath -m "${1:?usage: start.sh DIR}")"
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(bash "$here/build.sh" | tail -n 1)"
mkdir -p "$dir"
cd "$dir"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
etcd_port="$(free_port)"
peer_port="$(free_port)"
api_port="$(free_port)"

# Keys and certificates: a CA, the API server's serving certificate, the service account key.
if [ ! -f ca.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
    -subj "/CN=hakeeper-test-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
    -subj "/CN=kube-apiserver" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out apiserver.crt -days 2 -extfile san.ext 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
fi
admin_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sidecar_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
reader_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > tokens.csv <<CSV
${admin_token},admin,admin,"system:masters"
${sidecar_token},hakeeper-sidecar,hakeeper-sidecar
${reader_token},hakeeper-reader,hakeeper-reader
CSV

: > pids
etcd --name test --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:${etcd_port}" \
  --advertise-client-urls "http://127.0.0.1:${etcd_port}" \
  --listen-peer-urls "http://127.0.0.1:${peer_port}" \
  --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
  --initial-cluster "test=http://127.0.0.1:${peer_port}" \
  > etcd.log 2>&1 &
echo $! >> pids

"$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:${etcd_port}" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --endpoint-reconciler-type none \
  --tls-cert-file apiserver.crt --tls-private-key-file apiserver.key \
  --client-ca-file ca.crt \
  --token-auth-file tokens.csv \
  --authorization-mode RBAC \
  --service-account-key-file sa.pub \
  --service-account-signing-key-file sa.key \
  --service-account-issuer https://kubernetes.default.svc \
  --service-cluster-ip-range 10.0.0.0/24 \
  --enable-admission-plugins NamespaceLifecycle \
  --disable-admission-plugins ServiceAccount \
  > apiserver.log 2>&1 &
echo $! >> pids

kubeconfig() { # NAME TOKEN
  cat > "$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:${api_port}
    certificate-authority: ${dir}/ca.crt
users:
- name: $1
  user:
    token: $2
contexts:
- name: test
  context: {cluster: test, user: $1, namespace: default}
current-context: test
KC
}
kubeconfig admin "$admin_token"
kubeconfig sidecar "$sidecar_token"
kubeconfig reader "$reader_token"

for _ in $(seq 1 120); do
  if kubectl --kubeconfig admin.kubeconfig get --raw /readyz >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done
kubectl --kubeconfig admin.kubeconfig get --raw /readyz >/dev/null || {
  tail -n 30 apiserver.log >&2
  echo "kube-apiserver did not become ready" >&2
  exit 1
}

"$bin/kube-controller-manager" \
  --kubeconfig admin.kubeconfig \
  --controllers garbagecollector,namespace \
  --leader-elect=false \
  --use-service-account-credentials=false \
  --bind-address 127.0.0.1 --secure-port 0 \
  > controller-manager.log 2>&1 &
echo $! >> pids

# What the sidecar needs, granted to the restricted identity in every namespace.
kubectl --kubeconfig admin.kubeconfig apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: hakeeper-sidecar}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: hakeeper-sidecar}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: hakeeper-sidecar}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: hakeeper-sidecar}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: hakeeper-reader}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: hakeeper-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: hakeeper-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: hakeeper-reader}
YAML
kubectl --kubeconfig admin.kubeconfig version 2>/dev/null | awk '/Server Version/ { print }'
echo "real API server on https://127.0.0.1:${api_port}: ${dir}/admin.kubeconfig"
