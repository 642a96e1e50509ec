// map.js — the Tiled JSON map (docs/protocol.md, "Map"): which tiles block,
// the points of interest, and a picture of it drawn once to an offscreen canvas.
// All coordinates here are world units unless a name says tiles.

const FLIP_BITS = 0x0fffffff; // Tiled stores flip/rotation flags in the top 4 bits of a gid
// Colours when a tileset image cannot be loaded: by the tile's Tiled `type`,
// else by gid from a palette.
const TYPE_COLORS = { floor: "#8f8670", wall: "#5a4a40", grass: "#3f7a3a", water: "#2e5a80" };
const GROUND_COLORS = ["#3f7a3a", "#8f8670", "#4a6e3a", "#7d7560"];
const WALL_COLORS = ["#5a4a40", "#615a52", "#57514b"];
const MAX_PICTURE_PX = 4096; // the offscreen picture is scaled down beyond this side

export class TileMap {
  constructor(json) {
    this.tilesX = json.width; // tiles
    this.tilesY = json.height; // tiles
    this.tileW = json.tilewidth; // world units per tile
    this.tileH = json.tileheight;
    this.width = this.tilesX * this.tileW; // world units
    this.height = this.tilesY * this.tileH;
    const layers = flattenLayers(json.layers || []);
    const tileLayers = layers.filter((l) => l.type === "tilelayer");
    this.ground = tileLayers.find((l) => l.name === "ground")?.data || null;
    this.walls = tileLayers.find((l) => l.name === "walls")?.data || null;
    this.tileProps = readTileProperties(json.tilesets || []);
    this.blocked = this.buildBlocked(tileLayers);
    this.tilesets = (json.tilesets || []).filter((ts) => !ts.source); // embedded ones only
    this.pois = readPois(layers);
    this.picture = null; // offscreen canvas, see draw()
    this.pictureScale = 1; // picture pixels per world unit
  }

  /** Uint8Array of tilesX * tilesY: 1 where a tile blocks movement. */
  buildBlocked(tileLayers) {
    const blocked = new Uint8Array(this.tilesX * this.tilesY);
    for (const layer of tileLayers) {
      const data = layer.data;
      if (!Array.isArray(data)) continue; // base64/compressed data is not used by npcworld maps
      const isWalls = layer.name === "walls";
      for (let i = 0; i < data.length && i < blocked.length; i++) {
        const gid = data[i] & FLIP_BITS;
        if (gid === 0) continue;
        if (isWalls || this.tileProps.get(gid)?.blocked === true) blocked[i] = 1;
      }
    }
    return blocked;
  }

  /** True when tile (tx, ty) blocks; tiles outside the map count as blocked. */
  isBlockedTile(tx, ty) {
    if (tx < 0 || ty < 0 || tx >= this.tilesX || ty >= this.tilesY) return true;
    return this.blocked[ty * this.tilesX + tx] === 1;
  }

  /**
   * Draw ground and walls once into an offscreen canvas.
   * @param {Map<object, HTMLImageElement>} images  loaded tileset images, by tileset
   */
  draw(images = new Map()) {
    const scale = Math.min(1, MAX_PICTURE_PX / Math.max(this.width, this.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.ceil(this.width * scale);
    canvas.height = Math.ceil(this.height * scale);
    const g = canvas.getContext("2d");
    g.scale(scale, scale);
    g.fillStyle = GROUND_COLORS[0];
    g.fillRect(0, 0, this.width, this.height);
    for (let ty = 0; ty < this.tilesY; ty++) {
      for (let tx = 0; tx < this.tilesX; tx++) {
        const i = ty * this.tilesX + tx;
        const x = tx * this.tileW;
        const y = ty * this.tileH;
        const groundGid = this.ground ? this.ground[i] & FLIP_BITS : 0;
        if (groundGid) this.drawTile(g, images, groundGid, x, y, GROUND_COLORS);
        const wallGid = this.walls ? this.walls[i] & FLIP_BITS : 0;
        if (wallGid) this.drawTile(g, images, wallGid, x, y, WALL_COLORS);
        if (this.blocked[i]) {
          g.fillStyle = "rgba(0,0,0,0.3)"; // a bottom edge, so blocked tiles read as raised
          g.fillRect(x, y + this.tileH - 4, this.tileW, 4);
        }
      }
    }
    this.drawPoiNames(g);
    this.picture = canvas;
    this.pictureScale = scale;
  }

  /** One tile from its tileset image if loaded, else a flat colour. */
  drawTile(g, images, gid, x, y, palette) {
    const ts = this.tilesetOf(gid);
    const img = ts && images.get(ts);
    if (img && ts.columns > 0) {
      const local = gid - ts.firstgid;
      const tw = ts.tilewidth;
      const th = ts.tileheight;
      const sx = (ts.margin || 0) + (local % ts.columns) * (tw + (ts.spacing || 0));
      const sy = (ts.margin || 0) + Math.floor(local / ts.columns) * (th + (ts.spacing || 0));
      g.drawImage(img, sx, sy, tw, th, x, y, this.tileW, this.tileH);
      return;
    }
    g.fillStyle = this.tileColor(gid, palette);
    g.fillRect(x, y, this.tileW, this.tileH);
  }

  /** The embedded tileset holding gid (the one with the largest firstgid <= gid). */
  tilesetOf(gid) {
    let best = null;
    for (const ts of this.tilesets) if (ts.firstgid <= gid && (!best || ts.firstgid > best.firstgid)) best = ts;
    return best;
  }

  /** A tile's `color` property, else a colour for its `type`, else a palette colour by gid. */
  tileColor(gid, palette) {
    const props = this.tileProps.get(gid);
    if (typeof props?.color === "string") return props.color;
    if (props?.type in TYPE_COLORS) return TYPE_COLORS[props.type];
    return palette[gid % palette.length];
  }

  drawPoiNames(g) {
    g.font = "bold 18px sans-serif";
    g.textAlign = "center";
    g.textBaseline = "middle";
    g.fillStyle = "rgba(255,255,255,0.28)";
    for (const poi of this.pois) {
      if (!poi.name) continue;
      g.fillText(poi.name, poi.x, poi.y);
      g.fillRect(poi.x - 2, poi.y + 12, 4, 4);
    }
  }
}

/** Map gid -> {propertyName: value} from each tileset's per-tile properties. */
function readTileProperties(tilesets) {
  const props = new Map();
  for (const ts of tilesets) {
    for (const tile of ts.tiles || []) {
      const values = { type: tile.type ?? tile.class };
      for (const p of tile.properties || []) values[p.name] = p.value;
      props.set(ts.firstgid + tile.id, values);
    }
  }
  return props;
}

/** Named points of the object layer `poi`: [{name, x, y}] in world units. */
function readPois(layers) {
  const layer = layers.find((l) => l.type === "objectgroup" && l.name === "poi");
  if (!layer) return [];
  // A rectangle's point is its centre; a point object has width = height = 0.
  return (layer.objects || []).map((o) => ({
    name: o.name || "",
    x: o.x + (o.width || 0) / 2,
    y: o.y + (o.height || 0) / 2,
  }));
}

/** Layers in draw order, with group layers opened up. */
function flattenLayers(layers) {
  return layers.flatMap((l) => (l.type === "group" ? flattenLayers(l.layers || []) : [l]));
}

/** Load each embedded tileset's image (relative to the map's URL); missing ones are skipped. */
async function loadTilesetImages(tilesets, mapUrl) {
  const images = new Map();
  await Promise.all(
    tilesets
      .filter((ts) => typeof ts.image === "string")
      .map(async (ts) => {
        const img = new Image();
        img.src = new URL(ts.image, new URL(mapUrl, location.href)).href;
        try {
          await img.decode();
          images.set(ts, img);
        } catch {
          console.info(`npcworld: tileset image ${img.src} not available; drawing flat colours`);
        }
      }),
  );
  return images;
}

export async function loadMap(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`map ${url}: HTTP ${res.status}`);
  const map = new TileMap(await res.json());
  map.draw(await loadTilesetImages(map.tilesets, url));
  return map;
}
