"""Triangle-mesh building blocks for the procedural body: loops, strips, caps and checks.

The body is assembled from closed vertex loops (rings around a limb, or junction loops where
limbs meet the torso). Neighbouring loops are joined by a *zipper* strip that walks both loops
by normalised arc length, so loops of different sizes join cleanly; a tube ends in a fan
around a pole vertex. Face orientation is made consistent afterwards in one pass, so the
construction only has to get the connectivity right.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import scipy.sparse


class MeshBuilder:
    """Accumulates vertices and triangles; indices are returned as numpy arrays."""

    def __init__(self) -> None:
        self._points: list[np.ndarray] = []
        self._regions: list[np.ndarray] = []
        self._faces: list[np.ndarray] = []
        self._count = 0
        self.region = 0
        """Region id given to the vertices added from now on."""

    def add(self, points: np.ndarray) -> np.ndarray:
        """Append (N, 3) points; return their (N,) indices."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        indices = np.arange(self._count, self._count + len(points))
        self._points.append(points)
        self._regions.append(np.full(len(points), self.region, dtype=np.int64))
        self._count += len(points)
        return indices

    def positions(self, indices: np.ndarray) -> np.ndarray:
        return self.vertices()[indices]

    def vertices(self) -> np.ndarray:
        return np.concatenate(self._points, axis=0)

    def regions(self) -> np.ndarray:
        """(V,) region id of every vertex."""
        return np.concatenate(self._regions)

    def zip_loops(self, loop_a: np.ndarray, loop_b: np.ndarray) -> None:
        """Triangulate the band between two closed loops that start and turn alike."""
        verts = self.vertices()
        self._faces.append(zipper_faces(loop_a, loop_b, verts[loop_a], verts[loop_b]))

    def fan(self, loop: np.ndarray, pole: int) -> None:
        """Close a loop with triangles around one pole vertex."""
        following = np.roll(loop, -1)
        self._faces.append(np.stack([loop, following, np.full_like(loop, pole)], axis=1))

    def faces(self) -> np.ndarray:
        return np.concatenate(self._faces, axis=0).astype(np.int64)


def _arc_fractions(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length of a closed loop at each vertex, as a fraction in [0, 1)."""
    segment = np.linalg.norm(np.roll(points, -1, axis=0) - points, axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(segment)[:-1]])
    return cumulative / segment.sum()


def zipper_faces(loop_a: np.ndarray, loop_b: np.ndarray, points_a: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """(len(a) + len(b), 3) triangles between two closed loops, merged by arc length."""
    t_a = np.append(_arc_fractions(points_a), 1.0)
    t_b = np.append(_arc_fractions(points_b), 1.0)
    n_a, n_b = len(loop_a), len(loop_b)
    i = j = 0
    faces = []
    while i < n_a or j < n_b:
        advance_a = j >= n_b or (i < n_a and t_a[i + 1] <= t_b[j + 1])
        a0, b0 = loop_a[i % n_a], loop_b[j % n_b]
        if advance_a:
            faces.append((a0, loop_a[(i + 1) % n_a], b0))
            i += 1
        else:
            faces.append((a0, loop_b[(j + 1) % n_b], b0))
            j += 1
    return np.array(faces, dtype=np.int64)


def resample_loop(points: np.ndarray, count: int) -> np.ndarray:
    """``count`` points evenly spaced by arc length along a closed polyline, from points[0]."""
    closed = np.concatenate([points, points[:1]], axis=0)
    segment = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(segment)])
    targets = np.arange(count) * cumulative[-1] / count
    return np.stack([np.interp(targets, cumulative, closed[:, k]) for k in range(3)], axis=1)


def _directed_edges(faces: np.ndarray) -> np.ndarray:
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=0)


def orient_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Make the winding of every face agree with its neighbours and point normals outwards.

    Breadth-first over faces that share an edge: a neighbour that walks the shared edge in the
    same direction is flipped. Finally, the whole mesh is flipped if its signed volume is
    negative. Requires a connected, orientable, closed mesh.
    """
    faces = faces.copy()
    num_faces = len(faces)
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for face_index, face in enumerate(faces):
        for k in range(3):
            key = (min(face[k], face[(k + 1) % 3]), max(face[k], face[(k + 1) % 3]))
            edge_faces.setdefault(key, []).append(face_index)
    visited = np.zeros(num_faces, dtype=bool)
    visited[0] = True
    queue = deque([0])
    while queue:
        current = queue.popleft()
        face = faces[current]
        for k in range(3):
            u, v = face[k], face[(k + 1) % 3]
            for other in edge_faces[(min(u, v), max(u, v))]:
                if visited[other]:
                    continue
                other_face = faces[other]
                for m in range(3):
                    if other_face[m] == u and other_face[(m + 1) % 3] == v:
                        faces[other] = other_face[::-1]
                        break
                visited[other] = True
                queue.append(other)
    assert visited.all(), "mesh is not connected"
    if signed_volume(vertices, faces) < 0:
        faces = faces[:, ::-1]
    return np.ascontiguousarray(faces)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed mesh; positive when face normals point outwards."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def topology_report(faces: np.ndarray, num_vertices: int) -> dict[str, int | bool]:
    """Counts that decide whether a triangle mesh is a closed, oriented genus-0 surface."""
    edges = _directed_edges(faces)
    undirected = np.sort(edges, axis=1)
    _, undirected_counts = np.unique(undirected, axis=0, return_counts=True)
    _, directed_counts = np.unique(edges, axis=0, return_counts=True)
    used = np.unique(faces).size
    euler = num_vertices - len(undirected_counts) + len(faces)
    return {
        "num_vertices": num_vertices,
        "num_faces": len(faces),
        "num_edges": len(undirected_counts),
        "unused_vertices": num_vertices - used,
        "edges_not_shared_by_two_faces": int((undirected_counts != 2).sum()),
        "edges_walked_twice_in_one_direction": int((directed_counts != 1).sum()),
        "degenerate_faces": int(
            ((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])).sum()
        ),
        "euler_characteristic": euler,
        "closed_oriented_genus0": bool(
            (undirected_counts == 2).all() and (directed_counts == 1).all() and euler == 2 and used == num_vertices
        ),
    }


def neighbour_average(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    """(V, V) sparse operator averaging each vertex's neighbours (the uniform Laplacian + I)."""
    edges = _directed_edges(faces)
    edges = np.concatenate([edges, edges[:, ::-1]])
    matrix = scipy.sparse.coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_vertices, num_vertices)
    ).tocsr()
    matrix.data[:] = 1.0  # each edge is listed once per adjacent face; count it once
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    return scipy.sparse.diags(1.0 / degree) @ matrix


def diffuse(field: np.ndarray, average: scipy.sparse.csr_matrix, steps: int) -> np.ndarray:
    """Blur a per-vertex (V, ...) field over the surface: ``steps`` half steps to the neighbours."""
    flat = field.reshape(len(field), -1)
    for _ in range(steps):
        flat = 0.5 * flat + 0.5 * (average @ flat)
    return flat.reshape(field.shape)


def taubin_smooth(
    vertices: np.ndarray, faces: np.ndarray, iterations: int, lam: float = 0.5, mu: float = -0.53
) -> np.ndarray:
    """Taubin's lambda/mu smoothing with the uniform Laplacian: smooths without shrinking."""
    average = neighbour_average(faces, len(vertices))
    smoothed = vertices.copy()
    for _ in range(iterations):
        for factor in (lam, mu):
            smoothed = smoothed + factor * (average @ smoothed - smoothed)
    return smoothed


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals, the area-weighted mean of the adjacent face normals."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
